"""The in-process online store: a dict. The default backend, and the one tests use."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from arrive.store.base import (
    EntityKey,
    FeatureRow,
    FeatureValue,
    ValidRows,
    checked_key,
    merge_row,
    valid_row,
)


class InMemoryStore:
    """An :class:`~arrive.store.base.OnlineStore` in a dict, about 1 µs per entity read.

    Thread-safe: one lock guards the dict, so an ingest thread may write while
    request handlers read. Holds every entity ever written, in this process only;
    nothing expires (wrap it in :class:`~arrive.store.freshness.FreshStore` so
    stale values read as missing).
    """

    def __init__(self) -> None:
        self._rows: dict[EntityKey, dict[str, FeatureValue]] = {}
        self._newest: dict[EntityKey, int] = {}  # latest event time stored per entity
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`arrive.store.base.OnlineStore.get_many`."""
        with self._lock:
            found = [self._rows.get(key) for key in keys]
            return [None if row is None else dict(row) for row in found]

    def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`arrive.store.base.OnlineStore.put_many`; a
        :class:`~arrive.store.base.ValidRows` is merged without validating it again."""
        if type(rows) is ValidRows:
            batch: Sequence[tuple[EntityKey, FeatureRow]] = rows
        else:
            batch = [(checked_key(key), valid_row(key, row)) for key, row in rows]
        stored_rows, newest = self._rows, self._newest
        with self._lock:
            for key, row in batch:
                if not row:
                    continue
                stamps = [fv[1] for fv in row.values()]
                stored = stored_rows.get(key)
                if stored is None:
                    stored_rows[key] = dict(row)
                elif min(stamps) > newest[key]:  # every value newer than all stored: all win
                    stored.update(row)
                else:
                    merge_row(stored, row)
                newest[key] = max(newest.get(key, stamps[0]), *stamps)

    def ping(self) -> None:
        """Always ready."""

    def close(self) -> None:
        """Nothing to release; the stored rows stay readable."""

    def __len__(self) -> int:
        """The number of entities stored."""
        return len(self._rows)


class AsyncInMemoryStore:
    """:class:`InMemoryStore` as an :class:`~arrive.store.base.AsyncOnlineStore`.

    Calls the wrapped store inline on the event loop (it never blocks for long),
    so a service can await it like a network backend while an ingest loop writes
    to the same ``store`` synchronously.

    Args:
        store: the store to present; a new empty one if omitted.
    """

    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store if store is not None else InMemoryStore()

    async def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`arrive.store.base.OnlineStore.get_many`."""
        return self.store.get_many(keys)

    async def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`arrive.store.base.OnlineStore.put_many`."""
        self.store.put_many(rows)

    async def ping(self) -> None:
        """Always ready."""

    async def close(self) -> None:
        """Closes the wrapped store."""
        self.store.close()
