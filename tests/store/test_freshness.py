"""FreshStore: a value older than its TTL is never served, and is counted per feature."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterator

import pytest

from arrive.clock import ManualClock
from arrive.errors import ConfigError
from arrive.store.base import EntityKey, FeatureRow, FeatureValue, to_epoch_us
from arrive.store.freshness import AsyncFreshStore, FreshStore
from arrive.store.memory import AsyncInMemoryStore, InMemoryStore
from arrive.store.redis import RedisStore
from arrive.testing.store_contract import T0, redis_test_config

A: EntityKey = ("store", "a")
TTL_S = {"load": 60.0, "prep": 3600.0}


def at(value: float | str | None, seconds_ago: float, clock: ManualClock) -> FeatureValue:
    return FeatureValue(value, to_epoch_us(clock.now()) - round(seconds_ago * 1e6))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def fresh(clock: ManualClock) -> FreshStore:
    return FreshStore(InMemoryStore(), TTL_S, clock)


def test_a_value_exactly_ttl_old_is_fresh_and_a_microsecond_more_is_not(
    fresh: FreshStore, clock: ManualClock
) -> None:
    fresh.put_many([(A, {"load": at(3.0, 60, clock), "prep": at(600.0, 0, clock)})])
    assert fresh.get_many([A]) == [{"load": at(3.0, 60, clock), "prep": at(600.0, 0, clock)}]
    clock.advance(1e-6)
    assert fresh.get_many([A]) == [{"prep": at(600.0, 1e-6, clock)}]
    assert fresh.violations() == {"load": 1}


def test_values_age_out_as_the_clock_moves(fresh: FreshStore, clock: ManualClock) -> None:
    fresh.put_many([(A, {"load": at(3.0, 0, clock), "prep": at(600.0, 0, clock)})])
    clock.advance(61)
    assert fresh.get_many([A, A]) == [{"prep": at(600.0, 61, clock)}] * 2
    clock.advance(3600)
    assert fresh.get_many([A]) == [{}]
    assert fresh.violations() == {"load": 3, "prep": 1}


def test_a_newer_write_makes_the_feature_fresh_again(fresh: FreshStore, clock: ManualClock) -> None:
    fresh.put_many([(A, {"load": at(3.0, 120, clock)})])
    assert fresh.get_many([A]) == [{}]
    fresh.put_many([(A, {"load": at(4.0, 1, clock)})])
    assert fresh.get_many([A]) == [{"load": at(4.0, 1, clock)}]
    assert fresh.violations() == {"load": 1}


def test_unknown_entities_stay_none_and_are_not_counted(fresh: FreshStore) -> None:
    assert fresh.get_many([A, ("courier", "c")]) == [None, None]
    assert fresh.violations() == {}


def test_features_without_a_ttl_are_served_as_stored(clock: ManualClock) -> None:
    fresh = FreshStore(InMemoryStore(), TTL_S, clock)
    fresh.put_many([(A, {"hour": at(7.0, 1e6, clock)})])
    assert fresh.get_many([A]) == [{"hour": at(7.0, 1e6, clock)}]


def test_a_default_ttl_covers_features_not_named(clock: ManualClock) -> None:
    fresh = FreshStore(InMemoryStore(), TTL_S, clock, default_ttl_s=10.0)
    fresh.put_many([(A, {"hour": at(7.0, 11, clock), "prep": at(1.0, 11, clock)})])
    assert fresh.get_many([A]) == [{"prep": at(1.0, 11, clock)}]
    assert fresh.violations() == {"hour": 1}


def test_future_event_times_are_fresh(fresh: FreshStore, clock: ManualClock) -> None:
    fresh.put_many([(A, {"load": at(1.0, -30, clock)})])
    assert fresh.get_many([A]) == [{"load": at(1.0, -30, clock)}]


def test_a_stale_value_is_never_served(clock: ManualClock) -> None:
    rng = random.Random(3)
    ttl_s = {f"f{i}": rng.uniform(1, 100) for i in range(8)}
    fresh = FreshStore(InMemoryStore(), ttl_s, clock)
    keys = [("courier", str(i)) for i in range(50)]
    fresh.put_many([(key, {f: at(1.0, rng.uniform(0, 120), clock) for f in ttl_s}) for key in keys])
    for _ in range(5):
        clock.advance(rng.uniform(0, 20))
        now_us = to_epoch_us(clock.now())
        stored = fresh.inner.get_many(keys)
        served = fresh.get_many(keys)
        stale = _stale(stored, ttl_s, now_us)
        for row in served:
            assert row is not None
            assert all(now_us - t_us <= ttl_s[name] * 1e6 for name, (_, t_us) in row.items())
        assert sum(len(row or {}) for row in served) + len(stale) == len(keys) * len(ttl_s)
    assert sum(fresh.violations().values()) > 0


def _stale(rows: list[FeatureRow | None], ttl_s: dict[str, float], now_us: int) -> list[str]:
    return [
        name
        for row in rows
        for name, (_, t_us) in (row or {}).items()
        if now_us - t_us > ttl_s[name] * 1e6
    ]


def test_violations_are_a_snapshot(fresh: FreshStore, clock: ManualClock) -> None:
    fresh.put_many([(A, {"load": at(3.0, 100, clock)})])
    fresh.get_many([A])
    snapshot = fresh.violations()
    snapshot["load"] = 100
    fresh.get_many([A])
    assert fresh.violations() == {"load": 2}


@pytest.mark.parametrize("ttl", [0.0, -1.0, math.nan, "60"])
def test_a_ttl_must_be_positive(clock: ManualClock, ttl: object) -> None:
    with pytest.raises(ConfigError, match=r"ttl_s\['load'\]"):
        FreshStore(InMemoryStore(), {"load": ttl}, clock)  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="default_ttl_s"):
        FreshStore(InMemoryStore(), {}, clock, default_ttl_s=ttl)  # type: ignore[arg-type]


def test_the_async_wrapper_applies_the_same_rule(clock: ManualClock) -> None:
    async def scenario() -> tuple[list[FeatureRow | None], dict[str, int]]:
        fresh = AsyncFreshStore(AsyncInMemoryStore(), TTL_S, clock)
        await fresh.put_many([(A, {"load": at(1.0, 61, clock), "prep": at(2.0, 0, clock)})])
        await fresh.ping()
        rows = await fresh.get_many([A])
        await fresh.close()
        return rows, fresh.violations()

    assert asyncio.run(scenario()) == ([{"prep": at(2.0, 0, clock)}], {"load": 1})


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore(redis_test_config(redis_url))
    yield store
    store.close()


@pytest.mark.redis
def test_freshness_wraps_redis_too(redis_store: RedisStore, clock: ManualClock) -> None:
    fresh = FreshStore(redis_store, TTL_S, clock)
    fresh.put_many([(A, {"load": at(1.0, 61, clock), "prep": at(2.0, 0, clock)})])
    fresh.ping()
    assert fresh.get_many([A]) == [{"prep": at(2.0, 0, clock)}]
    assert fresh.violations() == {"load": 1}
