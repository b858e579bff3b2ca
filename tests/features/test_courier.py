"""Couriers (the assigned courier's recent deliveries, and idle couriers near the
pickup from pings within 10 min), offline and online, pinned on a hand-made history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from arrive.features import courier
from arrive.geo import haversine_km_point
from arrive.testing.history import History, at, features_both_ways, north

LAT, LON = 52.5, 13.4  # the pickup point; couriers are placed due north of it, in km


def _history() -> History:
    history = History()
    # the courier's deliveries (delivery seconds = delivered - created)
    history.order("k1", at(hours=-2), delivered=at(hours=-1), courier_id="c1")  # 3600, in 1d
    history.order("k2", at(hours=-25), delivered=at(hours=-24), courier_id="c1")  # 3600, T-1d
    history.order("k3", at(hours=-30), delivered=at(hours=-25), courier_id="c1")  # 18000, in 7d
    history.order("k4", at(hours=-200), delivered=at(hours=-199), courier_id="c1")  # 8.3 days
    history.order("k5", at(minutes=-10), delivered=at(), courier_id="c1")  # at T: not counted
    history.order("k6", at(hours=-3), delivered=at(hours=-2), courier_id="c2")  # another courier
    # pings (TTL 10 min; near: within 3 km; nearest: within 5 km)
    history.ping("p1", at(minutes=-5), north(LAT, 1.0), LON, "idle")  # near, 1 km
    history.ping("p2", at(minutes=-10), north(LAT, 2.5), LON, "idle")  # T-10m exactly: near
    history.ping("p3", at(minutes=-10, seconds=-1), north(LAT, 0.5), LON, "idle")  # too old
    history.ping("p4", at(minutes=-1), north(LAT, 4.0), LON, "idle")  # within 5 km, not 3
    history.ping("p5", at(minutes=-20), north(LAT, 0.2), LON, "idle")
    history.ping("p5", at(minutes=-2), north(LAT, 0.2), LON, "busy")  # now busy
    history.ping("p6", at(minutes=-3), north(LAT, 0.3), LON, "busy")
    history.ping("p6", at(), north(LAT, 0.3), LON, "idle")  # idle only from T on
    history.ping("p7", at(minutes=-1), north(LAT, 6.0), LON, "idle")  # beyond 5 km
    return history


def _order(history: History, order_id: str, lat: float | None, **fields: object) -> None:
    history.order(order_id, at(), pickup_lat=lat, pickup_lon=None if lat is None else LON, **fields)


def test_the_assigned_courier_s_deliveries_over_trailing_windows() -> None:
    history = _history()
    _order(history, "q", LAT, courier_id="c1")
    features_both_ways(history)["q"].expect(
        {
            "courier_deliveries_1d": 2.0,  # k1, k2 (delivered at T-1d exactly)
            "courier_deliveries_7d": 3.0,  # + k3
            "courier_deliveries_all": 4.0,  # + k4
            "courier_delivery_mean_7d": 8400.0,  # (3600 + 3600 + 18000) / 3
        }
    )


def test_a_courier_without_deliveries_has_zero_counts_and_a_missing_mean() -> None:
    history = _history()
    _order(history, "q", LAT, courier_id="c9")
    features_both_ways(history)["q"].expect(
        {"courier_deliveries_all": 0.0, "courier_delivery_mean_7d": None}
    )


def test_idle_couriers_near_count_fresh_idle_pings_only() -> None:
    history = _history()
    _order(history, "q", LAT)
    # p1 (1 km) and p2 (2.5 km, pinged at T-10m); p3 stale, p4 at 4 km, p5 busy,
    # p6 idle only at T, p7 at 6 km
    features_both_ways(history)["q"].expect(
        {"idle_couriers_near": 2.0, "nearest_idle_courier_km": 1.0}
    )


def test_the_nearest_idle_courier_may_be_beyond_the_near_radius() -> None:
    history = _history()
    _order(history, "q", north(LAT, 10.0))  # p7 is 4 km away, p4 6 km, the rest farther
    features_both_ways(history)["q"].expect(
        {"idle_couriers_near": 0.0, "nearest_idle_courier_km": 4.0}
    )


def test_no_idle_courier_within_five_km_leaves_the_nearest_missing() -> None:
    history = _history()
    _order(history, "q", north(LAT, 50.0))
    features_both_ways(history)["q"].expect(
        {"idle_couriers_near": 0.0, "nearest_idle_courier_km": None}
    )


def test_an_order_without_a_pickup_point_has_proximity_missing() -> None:
    history = _history()
    _order(history, "q", LAT)
    _order(history, "q-nowhere", None)
    features_both_ways(history)["q-nowhere"].expect(
        {"idle_couriers_near": None, "nearest_idle_courier_km": None}
    )


def test_without_couriers_or_pings_the_group_is_left_out() -> None:
    history = History()
    history.order("a", at(hours=-1), delivered=at(minutes=-30))
    history.order("q", at())
    names = ("idle_couriers_near", "nearest_idle_courier_km")
    q = features_both_ways(history, extra=names)["q"]
    assert "courier (group)" in q.left_out
    assert not any(name.startswith("courier_") for name in q.offline)
    q.expect(dict.fromkeys(names))


def test_an_order_naming_no_courier_has_the_courier_history_missing_not_zero() -> None:
    history = _history()
    _order(history, "q", LAT)  # no courier known at creation, while other orders name one
    features_both_ways(history)["q"].expect(
        {
            "courier_deliveries_1d": None,
            "courier_deliveries_7d": None,
            "courier_deliveries_all": None,
            "courier_delivery_mean_7d": None,
        }
    )


def _naive_proximity(
    pings: pl.DataFrame, orders: pl.DataFrame
) -> list[tuple[float | None, float | None]]:
    """Per order: each courier's last ping strictly before it, if idle and fresh."""
    out: list[tuple[float | None, float | None]] = []
    for created, lat, lon in orders.iter_rows():
        last: dict[str, tuple[float, float, bool, datetime]] = {}
        for time, courier_id, p_lat, p_lon, status in pings.iter_rows():
            if time < created:
                last[courier_id] = (p_lat, p_lon, status == "idle", time)
        fresh = [
            haversine_km_point(lat, lon, p_lat, p_lon)
            for p_lat, p_lon, idle, time in last.values()
            if idle and time >= created - courier.PING_TTL
        ]
        near = float(sum(d <= courier.NEAR_RADIUS_KM for d in fresh))
        reachable = [d for d in fresh if d <= courier.NEAREST_MAX_KM]
        out.append((near, min(reachable) if reachable else None))
    return out


@pytest.mark.parametrize("pairs_per_chunk", [1, 7, 1_000_000])
def test_the_vectorised_sweep_matches_a_courier_by_courier_replay(
    monkeypatch: pytest.MonkeyPatch, pairs_per_chunk: int
) -> None:
    monkeypatch.setattr(courier, "_PAIRS_PER_CHUNK", pairs_per_chunk)
    rng = np.random.default_rng(7)
    start = datetime(2025, 3, 3, tzinfo=UTC)
    minutes = rng.integers(0, 90, 400)  # whole minutes: ties between pings and orders
    pings = pl.DataFrame(
        {
            "event_time": [start + timedelta(minutes=int(m)) for m in minutes],
            "courier_id": [f"c{i}" for i in rng.integers(0, 12, 400)],
            "lat": LAT + rng.uniform(-0.06, 0.06, 400),
            "lon": LON + rng.uniform(-0.08, 0.08, 400),
            "status": rng.choice(["idle", "busy"], 400).tolist(),
        }
    ).sort("event_time", maintain_order=True)
    orders = pl.DataFrame(
        {
            "created_at": [
                start + timedelta(minutes=int(m)) for m in sorted(rng.integers(0, 95, 60))
            ],
            "pickup_lat": LAT + rng.uniform(-0.03, 0.03, 60),
            "pickup_lon": LON + rng.uniform(-0.04, 0.04, 60),
        }
    )
    near, nearest = courier._sweep(pings, orders)
    got = [
        (float(a), None if np.isnan(b) else float(b)) for a, b in zip(near, nearest, strict=True)
    ]
    want = _naive_proximity(pings, orders)
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1] for g in got] == pytest.approx([w[1] for w in want], abs=1e-9)
    assert any(w[0] for w in want)  # the draw holds near couriers
    assert any(w[1] is None for w in want)  # and orders with none within 5 km
