"""A warm in-process cache answers the travel lookup at once: no task, no turn of the
event loop (each turn behind other requests' work was ~1 ms of /eta's p99 at 1,000
req/s), counted as the chain counts a cache answer; what it does not know fresh (a
miss, an answer within grace, a cache in Redis) is asked as before, and only that."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from prometheus_client import REGISTRY
from tests.serving.test_travel_deadline import AT, DEADLINE_S, SETTINGS, SHARE, order

from arrive.clock import ManualClock
from arrive.providers.base import Leg
from arrive.providers.builtin import BuiltinProvider
from arrive.providers.cache import TravelTimeCache, cache_key
from arrive.providers.cache_redis import RedisCacheStore
from arrive.providers.cache_store import CachedAnswer, MemoryCacheStore
from arrive.providers.chain import ProviderChain
from arrive.serving.travel import TravelLookup, leg_of
from arrive.testing.scripted import ScriptedProvider, Step
from arrive.testing.virtual_time import run_virtual


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _lookup(clock: ManualClock, name: str) -> tuple[TravelLookup, ScriptedProvider]:
    vendor = ScriptedProvider(name, clock, default=Step(seconds=300.0, latency_s=0.001))
    cache = TravelTimeCache(MemoryCacheStore(clock), clock, SETTINGS, f"{name}-cache")
    chain = ProviderChain([vendor], BuiltinProvider(), clock, cache=cache)
    return TravelLookup(chain, SHARE, client=None), vendor


def _stored(lookup: TravelLookup, index: int, age_s: float, seconds: float) -> None:
    cache = lookup.chain.cache
    assert cache is not None
    assert isinstance(cache.store, MemoryCacheStore)
    leg = leg_of(order(index))
    assert isinstance(leg, Leg)
    stored_at = (AT - timedelta(seconds=age_s)).timestamp()
    answer = CachedAnswer(seconds, None, "vendor", stored_at, leg.great_circle_km, AT.timestamp())
    asyncio.run(cache.store.put(cache_key(leg, SETTINGS), answer, 3600.0))


def test_a_warm_cache_answers_at_once_and_counts_it_as_the_chain_does() -> None:
    clock = ManualClock(AT)
    lookup, vendor = _lookup(clock, "warm")
    _stored(lookup, 0, age_s=10.0, seconds=420.0)
    answers = _sample("arrive_provider_answers_total", source="cache")
    hits = _sample("arrive_provider_cache_lookups_total", provider="warm-cache", outcome="hit")

    started = lookup.start([order(0)], DEADLINE_S)

    assert isinstance(started, list)  # the answers themselves, no task to await
    (found,) = started
    assert found is not None
    assert (found.source, found.seconds) == ("cache", 420.0)
    assert _sample("arrive_provider_answers_total", source="cache") == answers + 1
    hit = _sample("arrive_provider_cache_lookups_total", provider="warm-cache", outcome="hit")
    assert hit == hits + 1
    assert vendor.requests == []


def test_only_what_the_cache_does_not_know_fresh_is_asked() -> None:
    clock = ManualClock(AT)
    lookup, vendor = _lookup(clock, "partly")
    _stored(lookup, 0, age_s=10.0, seconds=420.0)  # fresh
    _stored(lookup, 1, age_s=200.0, seconds=500.0)  # past the TTL (150 s), within grace
    orders = [order(0), order(1), order(2)]  # order 2: a miss
    hits = _sample("arrive_provider_cache_lookups_total", provider="partly-cache", outcome="hit")

    async def scenario() -> list[str]:
        started = lookup.start(orders, DEADLINE_S)
        assert isinstance(started, asyncio.Future)
        found = await started
        await asyncio.sleep(1.0)  # the grace entry's refresh ends
        return [answer.source if answer else "none" for answer in found]

    sources = run_virtual(scenario(), clock)

    assert sources == ["cache", "grace", "partly"]
    # the fresh one counted once, though its order was in a batch that had to ask
    hit = _sample("arrive_provider_cache_lookups_total", provider="partly-cache", outcome="hit")
    assert hit == hits + 1
    assert len(vendor.requests) == 2  # the refresh of order 1 and the fill of order 2


def test_a_cache_in_redis_is_asked_as_before() -> None:
    clock = ManualClock(AT)
    cache = TravelTimeCache(RedisCacheStore("redis://127.0.0.1:1"), clock, SETTINGS, "r-cache")
    chain = ProviderChain([], BuiltinProvider(), clock, cache=cache)
    lookup = TravelLookup(chain, SHARE, client=None)

    async def scenario() -> object:
        started = lookup.start([order(0)], DEADLINE_S)
        found = await started if isinstance(started, asyncio.Future) else None
        await cache.close()
        return found

    found = asyncio.run(scenario())
    assert isinstance(found, list)  # a task was needed: the store is over the network
