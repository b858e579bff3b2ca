"""Any store awaited: :func:`as_async` presents a blocking :class:`OnlineStore` as an
:class:`AsyncOnlineStore` (the in-memory store inline, others through the thread pool)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import cast

from arrive.store.base import AsyncOnlineStore, EntityKey, FeatureRow, OnlineStore
from arrive.store.memory import AsyncInMemoryStore, InMemoryStore


class ThreadedStore:
    """A blocking :class:`OnlineStore` awaited through the event loop's thread pool."""

    def __init__(self, store: OnlineStore) -> None:
        self.store = store

    async def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`arrive.store.base.OnlineStore.get_many`."""
        return await asyncio.to_thread(self.store.get_many, keys)

    async def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`arrive.store.base.OnlineStore.put_many`."""
        await asyncio.to_thread(self.store.put_many, rows)

    async def ping(self) -> None:
        """See :meth:`arrive.store.base.OnlineStore.ping`."""
        await asyncio.to_thread(self.store.ping)

    async def close(self) -> None:
        """See :meth:`arrive.store.base.OnlineStore.close`."""
        await asyncio.to_thread(self.store.close)


def as_async(store: OnlineStore | AsyncOnlineStore) -> AsyncOnlineStore:
    """``store`` as an async store: async ones as they are, the in-memory store inline
    (it never blocks), any other blocking store through the thread pool."""
    if inspect.iscoroutinefunction(store.get_many):
        return cast(AsyncOnlineStore, store)
    if isinstance(store, InMemoryStore):
        return AsyncInMemoryStore(store)
    return ThreadedStore(cast(OnlineStore, store))
