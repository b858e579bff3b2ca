"""The travel-time cache: coarse geo cells × time bucket, TTL, grace, single-flight.

A leg's key is the grid cell of its origin, the cell of its destination (square cells of
``cell_m`` metres) and the ``bucket_s`` bucket of its start time: legs between the same two
cells in the same bucket share one vendor answer. An answer is

* **fresh** for ``ttl_s`` seconds after it was stored: answered from the cache (``cache``);
* **within grace** for ``grace_s`` more: answered at once as ``grace`` while one
  background request refreshes it (stale-while-revalidate);
* gone after that: a **miss**, one vendor request however many callers wait for it
  (single-flight, per process: see :mod:`arrive.providers.cache_redis`).

Legs of one key differ (by up to a cell at each end, up to a bucket in time): with a
``rescale`` (the built-in estimate's ratio,
:meth:`arrive.providers.builtin.BuiltinProvider.ratio`)
a cached answer is carried over to the leg asked, ``seconds × estimate(asked leg) /
estimate(cached leg)``: longer for a farther drop-off in the same cell, slower when the
asked hour is slower. Every entry keeps the leg it answered (km and departure) for that.

A store that fails (Redis down) reads as a miss and its writes are dropped: the cache
never fails a call the vendor could answer. Counted in ``arrive_provider_cache_lookups_total``
and ``arrive_provider_vendor_calls_saved_total`` under the cache's ``name``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from arrive.clock import Clock
from arrive.errors import ConfigError
from arrive.providers import metrics
from arrive.providers.base import Leg, ProviderError, TravelTime
from arrive.providers.cache_store import CachedAnswer, CacheStore, MemoryCacheStore

METRES_PER_DEGREE_LAT = 111_320.0
Fetch = Callable[[], Awaitable[TravelTime]]
"""The vendor request that fills a key: called at most once per key at a time."""


class Rescale(Protocol):
    """The factor that carries a travel time answered for a leg of ``km`` (great circle)
    leaving at ``departs`` over to ``leg`` (a positive finite number; 1 = unchanged)."""

    def __call__(self, leg: Leg, km: float, departs: datetime) -> float: ...


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Freshness and keys of the cache (module docstring)."""

    ttl_s: float = 3600.0
    grace_s: float = 600.0
    cell_m: float = 2500.0
    bucket_s: float = 3600.0

    def __post_init__(self) -> None:
        for field in ("ttl_s", "cell_m", "bucket_s"):
            value = getattr(self, field)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"cache.{field}: {value} must be a positive number")
        if not (self.grace_s >= 0 and math.isfinite(self.grace_s)):
            raise ConfigError(f"cache.grace_s: {self.grace_s} must be 0 or more")


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the cache holds for a leg: ``answer`` labelled ``cache`` or ``grace``, or a miss."""

    state: Literal["fresh", "grace", "miss"]
    answer: TravelTime | None = None


def cell(lat: float, lon: float, cell_m: float) -> tuple[int, int]:
    """The grid cell of a point: rows ``cell_m`` tall, columns ``cell_m`` wide at the row's
    latitude (so cells stay near square away from the equator)."""
    row = math.floor(lat * METRES_PER_DEGREE_LAT / cell_m)
    row_lat = (row + 0.5) * cell_m / METRES_PER_DEGREE_LAT
    width_deg = cell_m / (METRES_PER_DEGREE_LAT * max(math.cos(math.radians(row_lat)), 1e-6))
    return row, math.floor(lon / width_deg)


def cache_key(leg: Leg, settings: CacheSettings) -> str:
    """``origin cell / destination cell / time bucket`` of ``leg``."""
    o_row, o_col = cell(leg.origin_lat, leg.origin_lon, settings.cell_m)
    d_row, d_col = cell(leg.dest_lat, leg.dest_lon, settings.cell_m)
    bucket = math.floor(leg.at.timestamp() / settings.bucket_s)
    return f"{o_row}:{o_col}/{d_row}:{d_col}/{bucket}"


class TravelTimeCache:
    """The cache of one provider chain, over ``store``, named ``name`` in the metrics;
    answers carried over to the leg asked by ``rescale`` when given (module docstring)."""

    def __init__(
        self,
        store: CacheStore,
        clock: Clock,
        settings: CacheSettings,
        name: str = "traffic",
        rescale: Rescale | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.name = name
        self.rescale = rescale
        self._flights: dict[str, asyncio.Task[TravelTime]] = {}
        self._flight_legs: dict[str, Leg] = {}

    async def lookup(self, leg: Leg) -> Lookup:
        """The leg's cached answer and whether it is fresh or within grace (counted)."""
        return self._counted(self._judged(await self._get(cache_key(leg, self.settings)), leg))

    def fresh_now(self, leg: Leg) -> TravelTime | None:
        """The leg's fresh answer (``cache``, counted as a hit) when the store reads
        without waiting (in-process) and holds one; else None, nothing counted: ask
        :meth:`lookup`, which also sees answers within grace."""
        if not isinstance(self.store, MemoryCacheStore):
            return None
        found = self._judged(self.store.get_now(cache_key(leg, self.settings)), leg)
        return self._counted(found).answer if found.state == "fresh" else None

    async def stale(self, leg: Leg) -> TravelTime | None:
        """The leg's answer if fresh (``cache``) or within grace (``grace``), else None; not
        counted (the chain's last resort before the built-in estimate)."""
        return self._judged(await self._get(cache_key(leg, self.settings)), leg).answer

    async def fill(self, leg: Leg, fetch: Fetch) -> TravelTime:
        """``fetch``'s answer, stored; callers of the same key while it runs share it."""
        key = cache_key(leg, self.settings)
        flight = self._flights.get(key)
        if flight is None:
            return await asyncio.shield(self._start(key, leg, fetch))
        metrics.CALLS_SAVED.labels(self.name).inc()
        asked = self._flight_legs[key]
        answer = await asyncio.shield(flight)
        factor = self._factor(leg, asked.great_circle_km, asked.at)
        return TravelTime(answer.seconds * factor, answer.source, answer.distance_km)

    def in_flight(self, leg: Leg) -> asyncio.Task[TravelTime] | None:
        """The vendor request filling or refreshing the leg's key, if one runs."""
        return self._flights.get(cache_key(leg, self.settings))

    @property
    def flights(self) -> int:
        """Vendor requests running (fills and refreshes)."""
        return len(self._flights)

    def refresh(self, leg: Leg, fetch: Fetch) -> None:
        """Refresh the leg's entry in the background (unless a request for it is in flight)."""
        key = cache_key(leg, self.settings)
        if key not in self._flights:
            self._start(key, leg, fetch)

    async def close(self) -> None:
        """Stop background refreshes and close the store."""
        for flight in list(self._flights.values()):
            flight.cancel()
        await self.store.close()

    def _start(self, key: str, leg: Leg, fetch: Fetch) -> asyncio.Task[TravelTime]:
        flight = asyncio.ensure_future(self._fetch_and_store(key, leg, fetch))
        self._flights[key] = flight
        self._flight_legs[key] = leg
        flight.add_done_callback(lambda done: self._landed(key, done))
        return flight

    def _landed(self, key: str, flight: asyncio.Task[TravelTime]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
            del self._flight_legs[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: a failure no caller awaited is already counted

    async def _fetch_and_store(self, key: str, leg: Leg, fetch: Fetch) -> TravelTime:
        answer = await fetch()
        stored = CachedAnswer(
            answer.seconds,
            answer.distance_km,
            answer.source,
            self.clock.now().timestamp(),
            leg.great_circle_km,
            leg.at.timestamp(),
        )
        keep_s = self.settings.ttl_s + self.settings.grace_s
        with contextlib.suppress(ProviderError):  # the store is down: answered, uncached
            await self.store.put(key, stored, keep_s)
        return answer

    async def _get(self, key: str) -> CachedAnswer | None:
        try:
            return await self.store.get(key)
        except ProviderError:
            return None

    def _judged(self, found: CachedAnswer | None, leg: Leg) -> Lookup:
        """What the leg's entry ``found`` is worth now: fresh (``cache``), within grace
        (``grace``) or a miss; not counted."""
        age = self._age(found)
        if found is None or age > self.settings.ttl_s + self.settings.grace_s:
            return Lookup("miss")
        if age <= self.settings.ttl_s:
            return Lookup("fresh", self._answer(found, leg, "cache"))
        return Lookup("grace", self._answer(found, leg, "grace"))

    def _age(self, found: CachedAnswer | None) -> float:
        return math.inf if found is None else self.clock.now().timestamp() - found.stored_at

    def _counted(self, lookup: Lookup) -> Lookup:
        outcome = {"fresh": "hit", "grace": "grace", "miss": "miss"}[lookup.state]
        metrics.CACHE_LOOKUPS.labels(self.name, outcome).inc()
        if lookup.state != "miss":
            metrics.CALLS_SAVED.labels(self.name).inc()
        return lookup

    def _answer(self, found: CachedAnswer, leg: Leg, source: str) -> TravelTime:
        factor = 1.0
        if found.leg_km is not None and found.departs_at is not None:
            departs = datetime.fromtimestamp(found.departs_at, UTC)
            factor = self._factor(leg, found.leg_km, departs)
        return TravelTime(found.seconds * factor, source, found.distance_km)

    def _factor(self, leg: Leg, km: float, departs: datetime) -> float:
        """What carries an answer for a leg of ``km`` leaving at ``departs`` over to ``leg``."""
        factor = 1.0 if self.rescale is None else self.rescale(leg, km, departs)
        return factor if factor > 0 and math.isfinite(factor) else 1.0
