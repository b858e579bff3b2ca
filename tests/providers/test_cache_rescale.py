"""A cached travel time carried over to the leg asked (the built-in estimate's ratio of
distance and hour), on virtual time against a scripted vendor."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from msgspec import msgpack

from arrive.clock import ManualClock
from arrive.providers.base import Leg, TravelTime
from arrive.providers.builtin import BuiltinProvider
from arrive.providers.cache import CacheSettings, Rescale, TravelTimeCache, cache_key
from arrive.providers.cache_store import CachedAnswer, MemoryCacheStore
from arrive.providers.chain import ProviderChain
from arrive.serving.settings import ServeSettings
from arrive.serving.travel import build_travel
from arrive.testing.scripted import ScriptedProvider, Step
from arrive.testing.virtual_time import run_virtual

AT = datetime(2024, 1, 1, 7, 5, tzinfo=UTC)  # built-in speed 16 km/h at 7 h, 14 km/h at 8 h
LEG = Leg(37.7700, -122.4200, 37.7900, -122.4000, AT)
# the same cells (500 m), drop-off about 270 m farther from the store
FARTHER = Leg(37.7700, -122.4200, 37.7915, -122.3975, AT + timedelta(minutes=3))
SETTINGS = CacheSettings(ttl_s=7200.0, grace_s=0.0, cell_m=500.0, bucket_s=86_400.0)
BUILTIN = BuiltinProvider()


def chain_with(
    clock: ManualClock, vendor: ScriptedProvider, rescale: Rescale | None
) -> ProviderChain:
    cache = TravelTimeCache(MemoryCacheStore(clock), clock, SETTINGS, vendor.name, rescale)
    return ProviderChain([vendor], BUILTIN, clock, cache=cache)


def estimate(leg: Leg) -> float:
    return BUILTIN.estimate(leg).seconds


def test_the_legs_compared_share_a_key_and_differ_in_distance() -> None:
    assert cache_key(FARTHER, SETTINGS) == cache_key(LEG, SETTINGS)
    assert FARTHER.great_circle_km / LEG.great_circle_km == pytest.approx(1.09, abs=0.01)


@pytest.mark.parametrize("rescaled", [True, False])
def test_a_cached_answer_is_carried_over_to_a_farther_drop_off_in_the_same_cell(
    rescaled: bool,
) -> None:
    clock = ManualClock(AT)
    vendor = ScriptedProvider("rs-vendor", clock, default=Step(seconds=600.0))
    chain = chain_with(clock, vendor, BUILTIN.ratio if rescaled else None)

    async def scenario() -> list[TravelTime]:
        first = await chain.travel_time(LEG, timeout_s=0.3)
        clock.advance(180.0)
        return [first, await chain.travel_time(FARTHER, timeout_s=0.3)]

    first, carried = run_virtual(scenario(), clock)
    assert (first.source, first.seconds) == ("rs-vendor", 600.0)
    expected = 600.0 * estimate(FARTHER) / estimate(LEG) if rescaled else 600.0
    assert (carried.source, carried.seconds) == ("cache", pytest.approx(expected))
    assert len(vendor.requests) == 1


def test_an_answer_asked_in_a_slower_hour_is_slowed_by_the_builtin_table() -> None:
    clock = ManualClock(AT)
    vendor = ScriptedProvider("rh-vendor", clock, default=Step(seconds=600.0))
    chain = chain_with(clock, vendor, BUILTIN.ratio)
    an_hour_later = Leg(
        LEG.origin_lat, LEG.origin_lon, LEG.dest_lat, LEG.dest_lon, AT + timedelta(hours=1)
    )

    async def scenario() -> TravelTime:
        await chain.travel_time(LEG, timeout_s=0.3)
        clock.advance(3600.0)
        return await chain.travel_time(an_hour_later, timeout_s=0.3)

    answer = run_virtual(scenario(), clock)
    assert (answer.source, answer.seconds) == ("cache", pytest.approx(600.0 * 16.0 / 14.0))


def test_callers_joining_a_vendor_request_get_it_carried_over_to_their_own_leg() -> None:
    clock = ManualClock(AT)
    vendor = ScriptedProvider("rj-vendor", clock, default=Step(seconds=600.0, latency_s=0.05))
    chain = chain_with(clock, vendor, BUILTIN.ratio)

    async def scenario() -> list[TravelTime]:
        asked = (chain.travel_time(leg, timeout_s=0.3) for leg in (LEG, FARTHER))
        return list(await asyncio.gather(*asked))

    mine, joined = run_virtual(scenario(), clock)
    assert len(vendor.requests) == 1
    assert mine.seconds == 600.0
    assert joined.seconds == pytest.approx(600.0 * estimate(FARTHER) / estimate(LEG))


def test_an_entry_written_before_the_leg_fields_decodes_and_answers_as_stored() -> None:
    old = msgpack.encode([612.25, 3.5, "osrm", AT.timestamp()])
    found = msgpack.decode(old, type=CachedAnswer)
    assert (found.leg_km, found.departs_at) == (None, None)
    clock = ManualClock(AT)
    store = MemoryCacheStore(clock)
    cache = TravelTimeCache(store, clock, SETTINGS, "old-entries", BUILTIN.ratio)

    async def scenario() -> TravelTime | None:
        await store.put(cache_key(FARTHER, SETTINGS), found, 600.0)
        return await cache.stale(FARTHER)

    answer = run_virtual(scenario(), clock)
    assert answer is not None
    assert (answer.source, answer.seconds) == ("cache", 612.25)


def test_a_rescale_that_is_not_a_positive_number_leaves_the_answer_unchanged() -> None:
    clock = ManualClock(AT)
    vendor = ScriptedProvider("rn-vendor", clock, default=Step(seconds=600.0))
    chain = chain_with(clock, vendor, lambda leg, km, departs: float("nan"))

    async def scenario() -> TravelTime:
        await chain.travel_time(LEG, timeout_s=0.3)
        return await chain.travel_time(FARTHER, timeout_s=0.3)

    assert run_virtual(scenario(), clock).seconds == 600.0


@pytest.mark.parametrize(("rescale", "bucket_s"), [(True, 3600.0), (False, 900.0)])
def test_the_service_builds_its_cache_from_the_serve_settings(
    rescale: bool, bucket_s: float
) -> None:
    providers = {"travel": {"osrm_eu": {"kind": "osrm", "url": "http://127.0.0.1:9"}}}
    settings = ServeSettings(
        providers=providers, provider_cache_rescale=rescale, provider_cache_bucket_s=bucket_s
    )

    async def build() -> tuple[float, bool]:
        lookup = build_travel(settings)
        assert lookup is not None
        cache = lookup.chain.cache
        assert cache is not None
        await lookup.aclose()
        return cache.settings.bucket_s, cache.rescale is not None

    assert asyncio.run(build()) == (bucket_s, rescale)
