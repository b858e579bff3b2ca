"""Test doubles of the online store for timing-sensitive tests (no sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from arrive.store.base import EntityKey, FeatureRow
from arrive.store.memory import InMemoryStore


class GatedStore:
    """An async store whose reads wait until ``gate`` is set."""

    def __init__(self, inner: InMemoryStore) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.waiting = 0

    async def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        return self.inner.get_many(keys)

    async def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        self.inner.put_many(rows)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
