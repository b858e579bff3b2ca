"""Conformance suite for :class:`~arrive.store.base.OnlineStore` backends.

Every backend passes it unchanged. Provide a ``store_backend`` fixture returning
a :class:`StoreBackend` (each ``make()`` gives an empty store over storage of its
own) and subclass :class:`StoreContract` in a test module::

    import pytest
    from arrive.testing.store_contract import InMemoryBackend, RedisBackend, StoreContract

    @pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
    def store_backend(request):
        if request.param == "memory":
            return InMemoryBackend()
        return RedisBackend(request.getfixturevalue("redis_url"))

    class TestStoreContract(StoreContract):
        pass

Async backends run through :class:`SyncOverAsync`, so the same tests hold for them.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

import pytest

from arrive.store.base import (
    AsyncOnlineStore,
    EntityKey,
    FeatureRow,
    FeatureScalar,
    FeatureValue,
    OnlineStore,
    merge_row,
)
from arrive.store.memory import AsyncInMemoryStore, InMemoryStore

T = TypeVar("T")
T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
T0_US = 1709294400123456
STORE_A: EntityKey = ("store", "a")
TIE_LADDER: tuple[FeatureScalar, ...] = (
    *(None, -math.inf, -1.0, 0.0, 2.5, 1e300, math.inf),
    *("", "Z", "a", "z", "é", "ü", "店", "🍕"),
)
"""Values in the order settling equal event times (strings by code point, not locale)."""


class StoreBackend(Protocol):
    """One backend under test. To implement, provide ``make``: an empty store each call."""

    def make(self) -> OnlineStore: ...


class SyncOverAsync:
    """An :class:`OnlineStore` over an :class:`AsyncOnlineStore`, each call run to completion
    on a private event loop. For tests and scripts, never inside a running loop."""

    def __init__(self, store: AsyncOnlineStore) -> None:
        self.store = store
        self._runner = asyncio.Runner()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        return self._run(self.store.get_many(keys))

    def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        self._run(self.store.put_many(rows))

    def ping(self) -> None:
        self._run(self.store.ping())

    def close(self) -> None:
        try:
            self._run(self.store.close())
        finally:
            self._runner.close()


class InMemoryBackend:
    """:class:`~arrive.store.memory.InMemoryStore`."""

    def make(self) -> OnlineStore:
        return InMemoryStore()


class AsyncInMemoryBackend:
    """:class:`~arrive.store.memory.AsyncInMemoryStore`, through :class:`SyncOverAsync`."""

    def make(self) -> OnlineStore:
        return SyncOverAsync(AsyncInMemoryStore())


class RedisBackend:
    """:class:`~arrive.store.redis.RedisStore` at ``url``, under a fresh key prefix per store."""

    def __init__(self, url: str) -> None:
        self.url = url

    def make(self) -> OnlineStore:
        from arrive.store.redis import RedisStore

        return RedisStore(redis_test_config(self.url))


class AsyncRedisBackend(RedisBackend):
    """:class:`~arrive.store.redis.AsyncRedisStore`, through :class:`SyncOverAsync`."""

    def make(self) -> OnlineStore:
        from arrive.store.redis import AsyncRedisStore

        return SyncOverAsync(AsyncRedisStore(redis_test_config(self.url)))


class RedisClusterBackend(RedisBackend):
    """:class:`~arrive.store.redis_cluster.RedisClusterStore` at a ``redis+cluster://`` URL."""

    def make(self) -> OnlineStore:
        from arrive.store.redis_cluster import RedisClusterStore

        return RedisClusterStore(redis_test_config(self.url))


class AsyncRedisClusterBackend(RedisBackend):
    """:class:`~arrive.store.redis_cluster.AsyncRedisClusterStore`, awaited by SyncOverAsync."""

    def make(self) -> OnlineStore:
        from arrive.store.redis_cluster import AsyncRedisClusterStore

        return SyncOverAsync(AsyncRedisClusterStore(redis_test_config(self.url)))


def redis_test_config(url: str, **options: Any) -> Any:
    """A :class:`~arrive.store.redis.RedisStoreConfig` for ``url`` with a unique key prefix."""
    from arrive.store.redis import RedisStoreConfig

    return RedisStoreConfig(url=url, key_prefix=f"test-{uuid.uuid4().hex[:12]}", **options)


def fv(value: FeatureScalar, seconds: float = 0.0) -> FeatureValue:
    """``value`` as of ``seconds`` after :data:`T0`."""
    return FeatureValue(value, T0_US + round(seconds * 1e6))


def folded(
    puts: Sequence[tuple[EntityKey, FeatureRow]],
) -> dict[EntityKey, dict[str, FeatureValue]]:
    """The state the merge rule gives for ``puts`` (the reference the backends must match)."""
    state: dict[EntityKey, dict[str, FeatureValue]] = {}
    for key, row in puts:
        merge_row(state.setdefault(key, {}), row)
    return state


def _conflicting_puts(rng: random.Random) -> list[tuple[EntityKey, FeatureRow]]:
    """Puts over 3 entities × 3 features with few distinct times, so ties are common."""
    values: list[FeatureScalar] = [None, -1.5, 0.0, 2.0, 1e300, "a", "b", "é", "z", ""]
    keys: list[EntityKey] = [("store", "a"), ("store", "b"), ("courier", "a")]
    return [
        (
            rng.choice(keys),
            {name: fv(rng.choice(values), rng.choice([0, 1, 2])) for name in rng.sample("xyz", 2)},
        )
        for _ in range(30)
    ]


class StoreContract:
    """The tests every online store passes (needs a ``store_backend`` fixture)."""

    @pytest.fixture
    def store(self, store_backend: StoreBackend) -> Iterator[OnlineStore]:
        store = store_backend.make()
        yield store
        store.close()

    def test_round_trip(self, store: OnlineStore) -> None:
        row = {"prep_s": fv(600.0), "category": fv("pizza", 1), "load": fv(None, 2)}
        store.put_many([(STORE_A, row)])
        assert store.get_many([STORE_A]) == [row]

    def test_missing_entity_reads_none(self, store: OnlineStore) -> None:
        store.put_many([(STORE_A, {"x": fv(1.0)})])
        assert store.get_many([("store", "nope"), ("courier", "a")]) == [None, None]
        assert store.get_many([]) == []

    def test_rows_come_back_in_request_order_with_repeats(self, store: OnlineStore) -> None:
        keys = [("store", str(i)) for i in range(5)]
        store.put_many([(key, {"i": fv(float(i))}) for i, key in enumerate(keys)])
        request = [keys[3], ("store", "none"), keys[0], keys[3]]
        rows = store.get_many(request)
        assert [None if r is None else r["i"].value for r in rows] == [3.0, None, 0.0, 3.0]

    def test_kinds_and_ids_are_separate_namespaces(self, store: OnlineStore) -> None:
        keys: list[EntityKey] = [
            ("store", "1"),
            ("courier", "1"),
            ("store", "1:x"),
            ("s", "tore:1"),
        ]
        store.put_many([(key, {"k": fv(f"{key[0]}|{key[1]}")}) for key in keys])
        rows = store.get_many(keys)
        assert [r and r["k"].value for r in rows] == [f"{k}|{i}" for k, i in keys]

    def test_unicode_ids_and_feature_names(self, store: OnlineStore) -> None:
        key = ("store", "Ünïcødé 店 🍕 \t x")
        row = {"précis_°C": fv(21.5), "名前": fv("寿司 🍣")}
        store.put_many([(key, row)])
        assert store.get_many([key, ("store", "Unicode 店 🍕 \t x")]) == [row, None]

    def test_put_merges_into_the_stored_vector(self, store: OnlineStore) -> None:
        store.put_many([(STORE_A, {"x": fv(1.0), "y": fv(2.0)})])
        store.put_many([(STORE_A, {"y": fv(3.0, 1), "z": fv("new", 1)})])
        assert store.get_many([STORE_A]) == [{"x": fv(1.0), "y": fv(3.0, 1), "z": fv("new", 1)}]

    def test_an_older_event_time_never_overwrites(self, store: OnlineStore) -> None:
        store.put_many([(STORE_A, {"x": fv(2.0, 10)})])
        store.put_many([(STORE_A, {"x": fv(1.0, 5), "y": fv(None, -5)})])
        assert store.get_many([STORE_A]) == [{"x": fv(2.0, 10), "y": fv(None, -5)}]
        store.put_many([(STORE_A, {"x": fv(3.0, 10.000001)})])
        assert store.get_many([STORE_A]) == [{"x": fv(3.0, 10.000001), "y": fv(None, -5)}]

    def test_duplicate_puts_are_idempotent(self, store: OnlineStore) -> None:
        put = (STORE_A, {"x": fv(1.0, 1), "y": fv("s", 2)})
        store.put_many([put])
        once = store.get_many([STORE_A])
        store.put_many([put, put])
        store.put_many([put])
        assert store.get_many([STORE_A]) == once

    def test_one_entity_twice_in_one_batch_merges(self, store: OnlineStore) -> None:
        store.put_many(
            [
                (STORE_A, {"x": fv(2.0, 2), "y": fv(1.0)}),
                (STORE_A, {"x": fv(1.0, 1), "z": fv(5.0)}),
            ]
        )
        assert store.get_many([STORE_A]) == [{"x": fv(2.0, 2), "y": fv(1.0), "z": fv(5.0)}]

    def test_equal_event_times_are_settled_by_value_order(self, store: OnlineStore) -> None:
        for value in TIE_LADDER:  # each rung beats the one below it
            store.put_many([(STORE_A, {"x": fv(value)})])
            assert store.get_many([STORE_A]) == [{"x": fv(value)}]
        for value in reversed(TIE_LADDER):  # and none below the top replaces it
            store.put_many([(("store", "b"), {"x": fv(value)})])
            assert store.get_many([("store", "b")]) == [{"x": fv(TIE_LADDER[-1])}]

    @pytest.mark.parametrize("seed", range(3))
    def test_any_order_of_puts_gives_the_same_state(
        self, store_backend: StoreBackend, seed: int
    ) -> None:
        rng = random.Random(seed)
        puts = _conflicting_puts(rng)
        expected = folded(puts)
        keys = sorted(expected)
        for order in range(4):
            shuffled = rng.sample(puts, len(puts))
            store = store_backend.make()
            try:
                batches = [
                    shuffled[i : i + 1 + order * 3] for i in range(0, len(shuffled), 1 + order * 3)
                ]
                for batch in batches:
                    store.put_many(batch)
                assert store.get_many(keys) == [expected[key] for key in keys]
            finally:
                store.close()

    def test_many_entities_in_one_call(self, store: OnlineStore) -> None:
        keys = [("courier", f"c{i}") for i in range(3000)]
        rows = {key: {f"f{j}": fv(i + j / 10, i) for j in range(4)} for i, key in enumerate(keys)}
        store.put_many(list(rows.items()))
        assert store.get_many(keys) == [rows[key] for key in keys]

    @pytest.mark.parametrize(
        "value",
        [
            0.0,
            -0.5,
            0.1 + 0.2,
            1e-300,
            -1e300,
            2.0**60 + 2048,
            math.inf,
            -math.inf,
            1.5,
            "",
            "x" * 10_000,
            "a\x00b",
            None,
        ],
    )
    def test_values_come_back_exactly(self, store: OnlineStore, value: FeatureScalar) -> None:
        store.put_many([(STORE_A, {"v": fv(value)})])
        (row,) = store.get_many([STORE_A])
        assert row is not None
        assert row["v"] == fv(value)
        assert type(row["v"].value) is type(value)

    def test_numbers_are_stored_as_floats(self, store: OnlineStore) -> None:
        store.put_many(
            [(STORE_A, {"n": FeatureValue(3, T0_US), "m": FeatureValue(-(2**60), T0_US)})]
        )
        (row,) = store.get_many([STORE_A])
        assert row is not None
        assert (type(row["n"].value), row["n"].value) == (float, 3.0)
        assert (type(row["m"].value), row["m"].value) == (float, -(2.0**60))

    @pytest.mark.parametrize(
        "when",
        [
            T0,
            datetime(1969, 7, 20, 20, 17, 40, 999999, tzinfo=UTC),
            datetime(2199, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
            datetime(2024, 3, 1, 14, 0, 0, 7, tzinfo=timezone(timedelta(hours=2))),
        ],
    )
    def test_event_times_keep_their_microseconds(self, store: OnlineStore, when: datetime) -> None:
        store.put_many([(STORE_A, {"v": FeatureValue.at(1.0, when)})])
        (row,) = store.get_many([STORE_A])
        assert row is not None
        assert row["v"].event_time == when
        assert row["v"].event_time.tzinfo is UTC

    @pytest.mark.parametrize(
        ("key", "row", "match"),
        [
            (STORE_A, {"x": FeatureValue(math.nan, 0)}, "store:a feature 'x': NaN"),
            (STORE_A, {"x": FeatureValue(True, 0)}, "store:a feature 'x': value True is a bool"),
            (STORE_A, {"x": FeatureValue([1.0], 0)}, "store:a feature 'x': value .* is a list"),  # type: ignore[arg-type]
            (STORE_A, {"x": FeatureValue(1.0, 1.5)}, "store:a feature 'x': event_time_us 1.5"),  # type: ignore[arg-type]
            (STORE_A, {"x": FeatureValue(1.0, 2**53 + 1)}, "beyond"),
            (STORE_A, {"": FeatureValue(1.0, 0)}, "store:a: feature name '' must"),
            (STORE_A, {"x": (1.0, 0, 0)}, r"store:a feature 'x': \(1.0, 0, 0\) is not a \(value"),
            (("sto:re", "a"), {"x": FeatureValue(1.0, 0)}, "kind 'sto:re'"),
            (("store", ""), {"x": FeatureValue(1.0, 0)}, "entity store: id ''"),
        ],
    )
    def test_invalid_input_is_refused_and_nothing_is_stored(
        self, store: OnlineStore, key: EntityKey, row: FeatureRow, match: str
    ) -> None:
        good = (("store", "good"), {"x": fv(1.0)})
        with pytest.raises(ValueError, match=match):
            store.put_many([good, (key, row)])
        assert store.get_many([("store", "good")]) == [None]

    def test_rows_read_are_the_callers_own(self, store: OnlineStore) -> None:
        store.put_many([(STORE_A, {"x": fv(1.0)})])
        (row,) = store.get_many([STORE_A])
        assert isinstance(row, dict)
        row["x"] = fv(9.0)
        row["y"] = fv(9.0)
        assert store.get_many([STORE_A]) == [{"x": fv(1.0)}]

    def test_empty_writes_store_nothing(self, store: OnlineStore) -> None:
        store.put_many([])
        store.put_many([(STORE_A, {})])
        assert store.get_many([STORE_A]) == [None]

    def test_ping_answers_when_ready(self, store: OnlineStore) -> None:
        store.ping()
