"""Where the provider cache keeps its answers: the :class:`CacheStore` protocol and the
in-process default, :class:`MemoryCacheStore` (an LRU of bounded size).

A store keeps what it is given for ``keep_s`` seconds at least (then may forget it) and
knows nothing of freshness: :class:`arrive.providers.cache.TravelTimeCache` decides from
``stored_at`` whether an entry is fresh, within grace or too old. Backends are chosen in
:data:`BACKENDS`; each passes :class:`arrive.testing.cache_store_contract.CacheStoreContract`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Protocol

import msgspec

from arrive.clock import Clock
from arrive.errors import ConfigError


class CachedAnswer(msgspec.Struct, frozen=True, array_like=True):
    """A vendor's answer as stored: travel time, distance, the provider that gave it and
    when (unix seconds, from the injected clock's ``now``); then the leg it answered, its
    great-circle km and departure (unix seconds), so that another leg of the same key can
    be rescaled from it (None in entries written before these fields existed)."""

    seconds: float
    distance_km: float | None
    provider: str
    stored_at: float
    leg_km: float | None = None
    departs_at: float | None = None


class CacheStore(Protocol):
    """Keeps :class:`CachedAnswer` by key. To implement, provide ``get``, ``put`` (keep the
    answer ``keep_s`` seconds at least, unless evicted for room) and ``close``."""

    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer, keep_s: float) -> None: ...

    async def close(self) -> None: ...


BACKENDS: Final = {
    "memory": "arrive.providers.cache_store:MemoryCacheStore",
    "redis": "arrive.providers.cache_redis:RedisCacheStore",
}
"""The cache backends by ``type``, imported lazily."""


class MemoryCacheStore:
    """An in-process LRU of at most ``max_entries`` answers, each forgotten ``keep_s`` after
    its write (by ``clock``). One per process: workers do not share it."""

    def __init__(self, clock: Clock, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ConfigError(f"cache.max_entries: {max_entries} must be at least 1")
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()

    async def get(self, key: str) -> CachedAnswer | None:
        return self.get_now(key)

    def get_now(self, key: str) -> CachedAnswer | None:
        """:meth:`get` without a coroutine: an in-process read never waits."""
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self.clock.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return found[1]

    async def put(self, key: str, answer: CachedAnswer, keep_s: float) -> None:
        self._entries[key] = (self.clock.monotonic() + keep_s, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        self._entries.clear()
