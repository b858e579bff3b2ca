"""The travel lookup of /eta with a vendor slower than the deadline (issue 22: "a provider
never breaks the /eta deadline"), on virtual time: each request's travel time comes from
grace or the built-in estimate within the lookup's share of the deadline, the vendor
requests are left to run without the request, and neither a slow or refusing vendor nor
a vendor's answer leaves reference cycles behind (each would wait for the garbage
collector, whose pass over thousands of them stalled every request in flight for ~100 ms)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from arrive.clock import ManualClock
from arrive.providers.base import Leg
from arrive.providers.breaker import BreakerState
from arrive.providers.builtin import BuiltinProvider
from arrive.providers.cache import CacheSettings, TravelTimeCache, cache_key
from arrive.providers.cache_store import CachedAnswer, MemoryCacheStore
from arrive.providers.chain import ProviderChain
from arrive.providers.guard import GuardedProvider
from arrive.providers.http import VendorClient
from arrive.providers.retry import RetrySettings
from arrive.schema.events import OrderCreated
from arrive.serving.travel import TravelLookup, leg_of
from arrive.testing.scripted import ScriptedProvider, Step
from arrive.testing.virtual_time import run_virtual

AT = datetime(2024, 1, 1, 12, 5, tzinfo=UTC)
DEADLINE_S = 0.025  # the service's default /eta deadline
SHARE = 0.5  # the lookup's share of it (the default provider_share)
SETTINGS = CacheSettings(ttl_s=150.0, grace_s=600.0, cell_m=500.0, bucket_s=3600.0)


def order(index: int) -> OrderCreated:
    """An order whose leg has a cache key of its own (origins 1.1 km apart)."""
    lat = 37.70 + index * 0.01
    return OrderCreated(
        event_id=f"o{index}:c",
        event_time=AT,
        order_id=f"o{index}",
        pickup_lat=lat,
        pickup_lon=-122.42,
        drop_lat=lat + 0.02,
        drop_lon=-122.40,
    )


def slow_service(clock: ManualClock, name: str) -> tuple[TravelLookup, ScriptedProvider]:
    """The lookup ``build_travel`` makes for a vendor with ``timeout_ms = 200``, the vendor
    answering after 200 ms."""
    vendor = ScriptedProvider(name, clock, default=Step(seconds=300.0, latency_s=0.2))
    guarded = GuardedProvider(vendor, clock, retry=RetrySettings(attempt_timeout_s=0.2))
    builtin = BuiltinProvider()
    cache = TravelTimeCache(
        MemoryCacheStore(clock), clock, SETTINGS, f"{name}-cache", rescale=builtin.ratio
    )
    chain = ProviderChain([guarded], builtin, clock, cache=cache)
    return TravelLookup(chain, SHARE, client=None), vendor


@pytest.fixture
def no_automatic_collection() -> Iterator[None]:
    """The collector runs only when the test calls it."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_with_a_200_ms_vendor_requests_get_grace_or_builtin_within_their_share() -> None:
    clock = ManualClock(AT)
    lookup, vendor = slow_service(clock, "slow-vendor")
    cache = lookup.chain.cache
    assert cache is not None
    graced = order(0)  # answered 200 s ago: past the TTL, within grace
    leg = leg_of(graced)
    assert isinstance(leg, Leg)
    stored_at = (clock.now() - timedelta(seconds=200)).timestamp()
    answer = CachedAnswer(
        420.0, None, "slow-vendor", stored_at, leg.great_circle_km, AT.timestamp()
    )
    took: list[float] = []
    sources: dict[str, set[str]] = {}

    async def request(index: int) -> None:
        asked = order(index % 40)
        started = clock.monotonic()
        (found,) = await lookup.times([asked], DEADLINE_S)
        took.append(clock.monotonic() - started)
        assert found is not None
        sources.setdefault(asked.order_id, set()).add(found.source)

    async def at_200_per_second() -> None:
        await cache.store.put(cache_key(leg, SETTINGS), answer, 3600.0)
        requests = []
        for index in range(400):  # 2 s of requests, every order asked ten times
            requests.append(asyncio.ensure_future(request(index)))
            await asyncio.sleep(0.005)
        await asyncio.gather(*requests)
        await asyncio.sleep(3.0)  # the vendor requests that outlived their callers end

    run_virtual(at_200_per_second(), clock)
    assert len(took) == 400
    assert max(took) <= DEADLINE_S * SHARE  # never waited for the vendor past its share
    assert sources.pop("o0") == {"grace"}
    assert set.union(*sources.values()) == {"builtin"}
    assert vendor.requests  # the vendor was asked: its answers came too late
    guard = lookup.chain.links[0]
    assert isinstance(guard, GuardedProvider)
    assert guard.breaker.state is BreakerState.OPEN  # its timeouts opened the breaker


def test_a_vendor_that_times_out_or_is_refused_leaves_no_reference_cycles(
    no_automatic_collection: None,
) -> None:
    clock = ManualClock(AT)
    lookup, vendor = slow_service(clock, "cycle-vendor")
    guard = lookup.chain.links[0]
    assert isinstance(guard, GuardedProvider)

    async def requests(first: int, count: int) -> None:
        await asyncio.gather(*(lookup.times([order(i)], DEADLINE_S) for i in range(first, count)))
        await asyncio.sleep(1.0)  # every vendor request has ended

    async def scenario() -> tuple[int, int]:
        gc.collect()
        await requests(0, 10)  # cold keys: vendor requests time out, the breaker opens
        timed_out = gc.collect()
        await requests(10, 60)  # the breaker refuses each fill at once
        return timed_out, gc.collect()

    timed_out, refused = run_virtual(scenario(), clock)
    assert len(vendor.requests) >= 5
    assert guard.breaker.state is BreakerState.OPEN
    assert (timed_out, refused) == (0, 0)  # objects only the collector would have freed


def test_a_vendor_answer_once_read_leaves_no_reference_cycle(
    no_automatic_collection: None,
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"code": "Ok"}))

    async def scenario() -> int:
        client = VendorClient(transport=transport)
        url = "http://vendor.test/route"
        await client.get_json("mock", url, timeout_s=1.0)  # the client's first use
        gc.collect()
        for _ in range(5):
            assert await client.get_json("mock", url, timeout_s=1.0) == {"code": "Ok"}
        left = gc.collect()
        await client.close()
        return left

    assert asyncio.run(scenario()) == 0
