"""The cache (keys, TTL, grace, single-flight) and the chain (order, deadline shares,
sources), against scripted vendors on virtual time."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from arrive.clock import ManualClock
from arrive.errors import ConfigError
from arrive.providers.base import Leg, TravelTime
from arrive.providers.breaker import BreakerSettings, BreakerState
from arrive.providers.cache import CacheSettings, TravelTimeCache, cache_key, cell
from arrive.providers.cache_redis import RedisCacheStore
from arrive.providers.cache_store import CachedAnswer, MemoryCacheStore
from arrive.providers.chain import ChainSettings, ProviderChain
from arrive.providers.guard import GuardedProvider
from arrive.testing.scripted import ScriptedProvider, Step
from arrive.testing.servers.ports import free_port
from arrive.testing.virtual_time import run_virtual

AT = datetime(2024, 1, 1, 12, 5, tzinfo=UTC)
LEG = Leg(37.7700, -122.4200, 37.7900, -122.4000, AT)
SETTINGS = CacheSettings(ttl_s=150.0, grace_s=600.0, cell_m=500.0, bucket_s=900.0)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def chain_over(
    clock: ManualClock, *links: ScriptedProvider, name: str, cached: bool = True
) -> ProviderChain:
    builtin = ScriptedProvider("builtin", clock, default=Step(seconds=999.0))
    cache = TravelTimeCache(MemoryCacheStore(clock), clock, SETTINGS, name) if cached else None
    return ProviderChain(links, builtin, clock, cache=cache)


def test_legs_between_the_same_cells_in_the_same_bucket_share_a_key() -> None:
    near = Leg(37.7702, -122.4201, 37.7901, -122.4002, AT + timedelta(minutes=5))
    assert cache_key(near, SETTINGS) == cache_key(LEG, SETTINGS)
    later = Leg(LEG.origin_lat, LEG.origin_lon, LEG.dest_lat, LEG.dest_lon, AT + timedelta(hours=1))
    elsewhere = Leg(37.7800, -122.4200, 37.7900, -122.4000, AT)  # origin 1.1 km north
    assert cache_key(later, SETTINGS) != cache_key(LEG, SETTINGS)
    assert cache_key(elsewhere, SETTINGS) != cache_key(LEG, SETTINGS)


@pytest.mark.parametrize("lat", [0.0, 37.77, 60.0])
def test_cells_are_about_cell_m_wide_at_every_latitude(lat: float) -> None:
    # walking east 1 km crosses about two 500 m cells
    step_deg = 1000.0 / (111_320.0 * math.cos(math.radians(lat)))
    crossed = cell(lat, 10.0 + step_deg, 500.0)[1] - cell(lat, 10.0, 500.0)[1]
    assert crossed in (2, 3)


def test_bad_cache_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"cache\.ttl_s"):
        CacheSettings(ttl_s=0)
    with pytest.raises(ConfigError, match=r"chain\.share"):
        ChainSettings(share=1.5)


def test_many_waiters_on_one_key_cost_one_vendor_call() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("sf-vendor", clock, default=Step(seconds=420.0, latency_s=0.05))
    chain = chain_over(clock, vendor, name="sf-cache")
    saved = sample("arrive_provider_vendor_calls_saved_total", provider="sf-cache")

    async def scenario() -> list[TravelTime]:
        return await asyncio.gather(*(chain.travel_time(LEG, timeout_s=0.3) for _ in range(200)))

    answers = run_virtual(scenario(), clock)
    assert len(vendor.requests) == 1
    assert {(a.seconds, a.source) for a in answers} == {(420.0, "sf-vendor")}
    assert sample("arrive_provider_vendor_calls_saved_total", provider="sf-cache") - saved == 199


def test_a_vendor_slower_than_the_budget_still_fills_the_cache_for_later_callers() -> None:
    clock = ManualClock()
    slow = ScriptedProvider("fill-slow", clock, default=Step(seconds=420.0, latency_s=0.2))
    chain = chain_over(clock, slow, name="fill-cache")

    async def scenario() -> list[tuple[str, float]]:
        first = await chain.travel_time(LEG, timeout_s=0.05)  # misses; the fill goes on
        took = clock.monotonic()
        await asyncio.sleep(0.3)  # virtual: the vendor answers the fill meanwhile
        second = await chain.travel_time(LEG, timeout_s=0.05)
        return [(first.source, took), (second.source, second.seconds)]

    (first, took), second = run_virtual(scenario(), clock)
    assert first == "builtin"
    assert took <= 0.05  # the caller kept its deadline
    assert second == ("cache", 420.0)
    assert len(slow.requests) == 1


def test_fills_past_max_fills_send_no_vendor_request() -> None:
    clock = ManualClock()
    hung = ScriptedProvider("fill-hung", clock, default=Step(seconds=1.0, latency_s=10.0))
    builtin = ScriptedProvider("builtin", clock, default=Step(seconds=999.0))
    cache = TravelTimeCache(MemoryCacheStore(clock), clock, SETTINGS, "fill-bounded")
    chain = ProviderChain([hung], builtin, clock, cache=cache, settings=ChainSettings(max_fills=3))
    legs = [Leg(37.0 + i * 0.05, -122.0, 37.5, -122.0, AT) for i in range(10)]

    async def scenario() -> list[str]:
        answers = [await chain.travel_time(leg, timeout_s=0.05) for leg in legs]
        return [answer.source for answer in answers]

    assert run_virtual(scenario(), clock) == ["builtin"] * 10
    assert len(hung.requests) == 3


def test_fresh_then_grace_with_a_background_refresh_then_a_miss() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("g-vendor", clock, default=Step(seconds=300.0, latency_s=0.05))
    chain = chain_over(clock, vendor, name="g-cache")

    async def ask() -> tuple[str, float, float]:
        started = clock.monotonic()
        answer = await chain.travel_time(LEG, timeout_s=0.3)
        return answer.source, answer.seconds, clock.monotonic() - started

    async def scenario() -> list[tuple[str, float, float]]:
        seen = [await ask()]
        clock.advance(149.0)
        seen.append(await ask())
        vendor.default = Step(seconds=360.0, latency_s=0.05)
        clock.advance(2.0)  # 151 s old: within grace
        seen.append(await ask())
        await asyncio.sleep(0.1)  # the background refresh lands
        seen.append(await ask())
        clock.advance(150.0 + 600.0 + 1.0)  # past grace: a miss
        seen.append(await ask())
        return seen

    seen = run_virtual(scenario(), clock)
    assert seen == [
        ("g-vendor", 300.0, pytest.approx(0.05)),
        ("cache", 300.0, 0.0),
        ("grace", 300.0, 0.0),  # answered at once, the old value
        ("cache", 360.0, 0.0),  # refreshed in the background
        ("g-vendor", 360.0, pytest.approx(0.05)),
    ]
    assert len(vendor.requests) == 3
    lookups = {
        outcome: sample("arrive_provider_cache_lookups_total", provider="g-cache", outcome=outcome)
        for outcome in ("hit", "grace", "miss")
    }
    assert lookups == {"hit": 2.0, "grace": 1.0, "miss": 2.0}


def test_a_value_within_grace_answers_while_every_vendor_is_down() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("down-vendor", clock, default=Step(seconds=300.0))
    chain = chain_over(clock, vendor, name="down-cache")

    async def scenario() -> list[str]:
        first = await chain.travel_time(LEG, timeout_s=0.3)
        vendor.default = Step(error="http_5xx")
        clock.advance(400.0)
        second = await chain.travel_time(LEG, timeout_s=0.3)
        await asyncio.sleep(1.0)  # the refresh fails quietly
        clock.advance(400.0)
        third = await chain.travel_time(LEG, timeout_s=0.3)
        return [first.source, second.source, third.source]

    assert run_virtual(scenario(), clock) == ["down-vendor", "grace", "builtin"]


def test_the_next_provider_answers_when_the_first_fails() -> None:
    clock = ManualClock()
    first = ScriptedProvider("a-fails", clock, default=Step(error="garbage"))
    second = ScriptedProvider("b-answers", clock, default=Step(seconds=500.0, latency_s=0.02))
    chain = chain_over(clock, first, second, name="ab-cache")
    answer = run_virtual(chain.travel_time(LEG, timeout_s=0.3), clock)
    assert (answer.source, answer.seconds) == ("b-answers", 500.0)


def test_a_provider_past_its_share_gives_way_and_the_chain_keeps_its_deadline() -> None:
    clock = ManualClock()
    slow = ScriptedProvider("a-slow", clock, default=Step(seconds=1.0, latency_s=10.0))
    quick = ScriptedProvider("b-quick", clock, default=Step(seconds=500.0, latency_s=0.02))
    chain = ProviderChain(
        [slow, quick],
        ScriptedProvider("builtin", clock),
        clock,
        settings=ChainSettings(share=0.5, reserve=0.1),
    )

    async def timed() -> tuple[str, float]:
        started = clock.monotonic()
        answer = await chain.travel_time(LEG, timeout_s=0.3)
        return answer.source, clock.monotonic() - started

    source, took = run_virtual(timed(), clock)
    assert source == "b-quick"
    assert took == pytest.approx(0.3 * 0.9 * 0.5 + 0.02)  # A's share, then B's answer


def test_when_every_vendor_runs_past_the_deadline_the_builtin_answers_in_time() -> None:
    clock = ManualClock()
    links = [
        ScriptedProvider(name, clock, default=Step(seconds=1.0, latency_s=10.0))
        for name in ("a-hung", "b-hung")
    ]
    chain = chain_over(clock, *links, name="hung-cache", cached=False)

    async def timed() -> tuple[str, float]:
        started = clock.monotonic()
        answer = await chain.travel_time(LEG, timeout_s=0.3)
        return answer.source, clock.monotonic() - started

    source, took = run_virtual(timed(), clock)
    assert source == "builtin"
    assert took <= 0.3


def test_answers_are_counted_by_source() -> None:
    clock = ManualClock()
    chain = chain_over(clock, ScriptedProvider("counted", clock), name="counted-cache")
    before = sample("arrive_provider_answers_total", source="counted")
    run_virtual(chain.travel_time(LEG, timeout_s=0.3), clock)
    assert sample("arrive_provider_answers_total", source="counted") - before == 1


def test_a_cache_store_that_is_down_reads_as_a_miss() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("no-redis-vendor", clock)
    store = RedisCacheStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    cache = TravelTimeCache(store, clock, SETTINGS, "no-redis")
    chain = ProviderChain([vendor], ScriptedProvider("builtin", clock), clock, cache=cache)

    async def scenario() -> list[str]:
        try:
            return [(await chain.travel_time(LEG, timeout_s=5.0)).source for _ in range(2)]
        finally:
            await chain.close()

    assert asyncio.run(scenario()) == ["no-redis-vendor"] * 2


@pytest.mark.redis
def test_workers_sharing_a_redis_cache_call_the_vendor_once(redis_url: str) -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("shared-vendor", clock, default=Step(seconds=250.0))
    prefix = f"chain-test:{id(clock)}:"

    def worker() -> ProviderChain:
        store = RedisCacheStore(redis_url, key_prefix=prefix)
        cache = TravelTimeCache(store, clock, SETTINGS, "shared-cache")
        return ProviderChain([vendor], ScriptedProvider("builtin", clock), clock, cache=cache)

    async def scenario() -> list[str]:
        first, second = worker(), worker()
        try:
            a = await first.travel_time(LEG, timeout_s=1.0)
            b = await second.travel_time(LEG, timeout_s=1.0)
            return [a.source, b.source]
        finally:
            await first.close()
            await second.close()

    assert asyncio.run(scenario()) == ["shared-vendor", "cache"]
    assert len(vendor.requests) == 1


def test_a_60_s_outage_under_load_is_answered_in_full_and_costs_only_probes() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("outage-vendor", clock, default=Step(seconds=300.0, latency_s=0.02))
    guarded = GuardedProvider(
        vendor, clock, breaker=BreakerSettings(failures=5, half_open_after_s=5.0)
    )
    short = CacheSettings(ttl_s=2.0, grace_s=30.0)  # so that the cache cannot hide the outage
    chain = ProviderChain(
        [guarded],
        ScriptedProvider("builtin", clock, default=Step(seconds=999.0)),
        clock,
        cache=TravelTimeCache(MemoryCacheStore(clock), clock, short, "outage-cache"),
    )
    answers: list[tuple[float, str]] = []

    async def one(index: int) -> None:
        origin_lat = 37.70 + (index % 250) * 0.01  # 250 keys, each asked every 5 s
        leg = Leg(origin_lat, -122.42, origin_lat + 0.02, -122.40, AT)
        started = clock.monotonic()
        answer = await chain.travel_time(leg, timeout_s=0.3)
        assert clock.monotonic() - started <= 0.3
        answers.append((started, answer.source))

    async def load() -> None:  # 50 calls a second for 90 s, never waiting for answers
        calls = [asyncio.ensure_future(one(index)) for index in range(1)]
        for index in range(1, 4500):
            await asyncio.sleep(0.02)
            calls.append(asyncio.ensure_future(one(index)))
        await asyncio.gather(*calls)

    async def down_from_10_to_70_s() -> None:
        await asyncio.sleep(10.0)
        vendor.default = Step(error="connection", latency_s=0.02)
        await asyncio.sleep(60.0)
        vendor.default = Step(seconds=300.0, latency_s=0.02)

    async def scenario() -> None:
        await asyncio.gather(load(), down_from_10_to_70_s())

    run_virtual(scenario(), clock)
    assert len(answers) == 4500  # every call answered, none past its deadline
    during = {source for t, source in answers if 11.0 <= t < 70.0}
    assert during == {"grace", "builtin"}
    probes = [t for t in vendor.requests if 10.0 <= t < 70.0]
    assert len(probes) <= 5 + 60 / 5.0 + 2  # to open, one per interval, the hedge/retry in flight
    recovered = min(t for t in vendor.requests if t >= 70.0)  # the first probe succeeds
    assert recovered - 70.0 <= 5.0 + 0.05
    assert guarded.breaker.state is BreakerState.CLOSED
    after = [source for t, source in answers if t >= recovered + 1.0]
    assert "builtin" not in after
    assert "outage-vendor" in after


class HungStore(MemoryCacheStore):
    """A cache store that never answers a read (a Redis stuck behind a slow command)."""

    async def get(self, key: str) -> CachedAnswer | None:
        await asyncio.sleep(3600.0)
        return None


def test_a_hung_cache_store_does_not_break_the_deadline() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("behind-hung-cache", clock)
    cache = TravelTimeCache(HungStore(clock), clock, SETTINGS, "hung-store")
    chain = ProviderChain([vendor], ScriptedProvider("builtin", clock), clock, cache=cache)

    async def timed() -> tuple[str, float]:
        started = clock.monotonic()
        answer = await chain.travel_time(LEG, timeout_s=0.3)
        return answer.source, clock.monotonic() - started

    source, took = run_virtual(timed(), clock)
    assert source == "builtin"
    assert took <= 0.3
