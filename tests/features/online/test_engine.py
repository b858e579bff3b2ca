"""The ingest engine: idempotent, expiring, late-aware, restartable from a checkpoint."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from msgspec.structs import replace

from arrive.errors import ConfigError
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.reader import OnlineFeatures
from arrive.ingest.source import entity_key
from arrive.schema.events import AnyEvent, Delivered, OrderCreated, WeatherObservation
from arrive.schema.frame import frame_to_events
from arrive.store.base import EntityKey, FeatureRow
from arrive.store.memory import InMemoryStore
from arrive.testing.factories import random_marketplace

T0 = datetime(2025, 3, 3, 12, tzinfo=UTC)


def _events(seed: int = 7) -> list[AnyEvent]:
    frame = random_marketplace(seed, n_orders=80).events.sort("event_time", "event_id")
    return list(frame_to_events(frame))


def _state(store: InMemoryStore) -> dict[EntityKey, dict[str, object]]:
    """Every stored value (event times left out: a write is stamped when it is made)."""
    keys = list(store._rows)
    rows: list[FeatureRow | None] = store.get_many(keys)
    return {
        k: {n: fv.value for n, fv in (row or {}).items()}
        for k, row in zip(keys, rows, strict=True)
        if k[0] != "pipeline"
    }


def _run(events: list[AnyEvent], batch: int = 25) -> InMemoryStore:
    store = InMemoryStore()
    engine = OnlineEngine(store, local_timezone="Europe/Berlin")
    for i in range(0, len(events), batch):
        engine.apply(events[i : i + batch])
    return store


def test_applying_every_batch_twice_gives_the_same_features() -> None:
    events = _events()
    twice = [e for i in range(0, len(events), 25) for e in events[i : i + 25] * 2]
    assert _state(_run(twice, batch=50)) == _state(_run(events))


def test_a_restart_from_a_checkpoint_gives_the_features_of_an_uninterrupted_run() -> None:
    events = _events()
    half = len(events) // 2
    store = InMemoryStore()
    first = OnlineEngine(store, local_timezone="Europe/Berlin")
    first.apply(events[:half])
    saved = first.checkpoint()
    second = OnlineEngine(store, local_timezone="Europe/Berlin")
    second.restore(saved)
    second.apply(events[half - 10 :])  # redelivered tail of the first run: no double count
    assert _state(store) == _state(_run(events, batch=len(events)))


def test_a_checkpoint_that_is_not_one_is_refused() -> None:
    engine = OnlineEngine(InMemoryStore())
    with pytest.raises(ConfigError, match="checkpoint"):
        engine.restore(b"\x00garbage")


def _created(order_id: str, at: datetime) -> OrderCreated:
    return OrderCreated(
        event_id=f"c-{order_id}", event_time=at, order_id=order_id, store_id="s1", market_id="m1"
    )


def _delivered(order_id: str, at: datetime) -> Delivered:
    return Delivered(event_id=f"d-{order_id}", event_time=at, order_id=order_id)


def _read(store: InMemoryStore, names: list[str], at: datetime) -> dict[str, object]:
    reader = OnlineFeatures(names, {"temperature_c": 3 * 3600.0})
    return dict(reader.read(store, [_created("q", at)], at)[0].values)


def test_a_window_forgets_an_observation_exactly_one_length_later() -> None:
    store = InMemoryStore()
    engine = OnlineEngine(store)
    engine.apply([_created("o1", T0), _delivered("o1", T0 + timedelta(minutes=30))])
    delivered = T0 + timedelta(minutes=30)
    names = ["store_delivery_count_1h", "store_delivery_mean_1h", "store_delivery_count_1d"]
    engine.advance(delivered + timedelta(hours=1))
    at_edge = _read(store, names, delivered + timedelta(hours=1))
    engine.advance(delivered + timedelta(hours=1, microseconds=1))
    after = _read(store, names, delivered + timedelta(hours=1, microseconds=1))
    assert at_edge == {names[0]: 1.0, names[1]: 1800.0, names[2]: 1.0}
    assert after == {names[0]: 0.0, names[1]: None, names[2]: 1.0}


def test_an_event_beyond_the_allowed_lateness_is_refused_and_changes_nothing() -> None:
    store = InMemoryStore()
    engine = OnlineEngine(store, lateness_s=60.0)
    engine.apply([_created("o1", T0)])
    refused = engine.apply(
        [_created("o2", T0 - timedelta(seconds=30)), _created("o3", T0 - timedelta(seconds=61))]
    )
    assert [(r.event.order_id, r.field) for r in refused] == [("o3", "event_time")]  # type: ignore[attr-defined]
    assert "61.0 s behind the watermark" in refused[0].reason
    engine.advance(T0 + timedelta(seconds=1))
    assert _read(store, ["store_open_orders"], T0 + timedelta(seconds=1)) == {
        "store_open_orders": 2.0
    }


def test_an_observation_older_than_its_ttl_is_never_served() -> None:
    store = InMemoryStore()
    engine = OnlineEngine(store)
    engine.apply(
        [
            WeatherObservation(
                event_id="w", event_time=T0, market_id="m1", condition="rain", temperature_c=4.0
            )
        ]
    )
    engine.advance(T0 + timedelta(hours=4))
    reader = OnlineFeatures(["temperature_c"], {"temperature_c": 3 * 3600.0})
    fresh_at, stale_at = T0 + timedelta(hours=3), T0 + timedelta(hours=3, microseconds=1)
    fresh = reader.read(store, [_created("q", fresh_at)], fresh_at)[0]
    stale = reader.read(store, [_created("q", stale_at)], stale_at)[0]
    assert fresh.values == {"temperature_c": 4.0}
    assert stale.values == {"temperature_c": None}
    assert stale.stale == ("temperature_c",)


def test_aggregates_read_as_stale_when_the_engine_stalls() -> None:
    store = InMemoryStore()
    OnlineEngine(store).apply([_created("o1", T0)])
    reader = OnlineFeatures(["store_open_orders"], {}, max_lag_s=300.0)
    late = T0 + timedelta(minutes=6)
    features = reader.read(store, [_created("q", late)], late)[0]
    assert features.values == {"store_open_orders": None}
    assert features.stale == ("store_open_orders",)


def test_what_a_request_gives_wins_as_offline_except_over_calendar_and_travel() -> None:
    """An attribute wins over the order's own field and distance and over a stored
    value (which is then neither stale nor missing), never over the calendar or the
    travel estimate; a feature nothing gives is missing."""
    store = InMemoryStore()
    OnlineEngine(store).apply([_created("o1", T0)])
    names = ["items", "distance_km", "hour_local", "travel_estimate_s", "store_open_orders"]
    reader = OnlineFeatures([*names, "weather", "subtotal"], {})
    plain = replace(_created("q", T0), items=2, pickup_lat=52.5, pickup_lon=13.4)
    plain = replace(plain, drop_lat=52.51, drop_lon=13.41)
    given = replace(plain, attributes=dict.fromkeys(names, 7))
    base = reader.read(store, [plain], T0)[0]
    got = reader.read(store, [given], T0)[0]
    assert base.values["items"] == 2.0
    assert base.values["store_open_orders"] == 1.0
    assert got.values["items"] == got.values["distance_km"] == 7.0
    assert got.values["store_open_orders"] == 7.0
    for name in ("hour_local", "travel_estimate_s"):
        assert got.values[name] == base.values[name] != 7.0
    assert list(got.values) == [*names, "weather", "subtotal"]
    assert got.missing == base.missing == ("weather",)
    assert got.values["subtotal"] is None  # an order field, given as unknown
    assert got.stale == ()


def test_partitions_interleaved_within_the_lateness_give_the_in_order_features() -> None:
    events = _events(11)
    partitions: list[list[AnyEvent]] = [[], [], []]
    for event in events:  # per-entity order holds, as with Kafka keys
        partitions[sum(entity_key(event).encode()) % 3].append(event)
    rng, merged, taken = random.Random(1), [], [0, 0, 0]
    while any(taken[i] < len(p) for i, p in enumerate(partitions)):
        i = rng.choice([j for j, p in enumerate(partitions) if taken[j] < len(p)])
        step = rng.randint(1, 60)
        merged += partitions[i][taken[i] : taken[i] + step]
        taken[i] += step
    assert merged != events
    store = InMemoryStore()
    engine = OnlineEngine(store, local_timezone="Europe/Berlin", lateness_s=3 * 86400.0)
    for i in range(0, len(merged), 40):
        engine.apply(merged[i : i + 40])
    assert engine.counts.late == 0
    assert _state(store) == _state(_run(events))
