"""The ground-truth functions respond to each factor they are documented to depend on."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from arrive.ingest.simulator import truth
from arrive.ingest.simulator.demand import DROP_RANGE_KM
from arrive.ingest.simulator.inputs import MAX_DROPOFF_S

CONDITION = {name: i for i, name in enumerate(truth.WEATHER_CONDITIONS)}


def _prep_base(**changes: float) -> float:
    args = {
        "category_prep_s": 600.0,
        "store_speed": 1.0,
        "items": 2.0,
        "peak_sensitivity": 0.3,
        "hour": 16.0,
    } | changes
    return float(truth.prep_base_s(**args))


def _timeline(**changes: float) -> truth.Timeline:
    args = {
        "created_s": 1000.0,
        "confirm_s": 60.0,
        "prep_time_s": 900.0,
        "dispatch_s": 45.0,
        "courier_free_s": 0.0,
        "to_store_s": 300.0,
        "handover_s": 90.0,
        "to_drop_s": 600.0,
        "dropoff_s": 120.0,
    } | changes
    return truth.timeline(**args)


def test_prep_is_slower_for_a_slower_store() -> None:
    assert _prep_base(store_speed=1.5) > _prep_base(store_speed=1.0) > _prep_base(store_speed=0.7)


def test_prep_is_slower_for_bigger_orders() -> None:
    assert _prep_base(items=6) > _prep_base(items=1)


def test_prep_is_slower_in_the_lunch_and_dinner_rush() -> None:
    quiet = _prep_base(hour=16.0)
    assert _prep_base(hour=12.75) > quiet
    assert _prep_base(hour=19.5) > quiet
    assert _prep_base(hour=19.5, peak_sensitivity=0.6) > _prep_base(hour=19.5, peak_sensitivity=0.1)


def test_prep_is_slower_with_more_open_orders_up_to_a_cap() -> None:
    times = [truth.prep_s(600.0, n) for n in range(truth.LOAD_CAP + 3)]
    assert all(a < b for a, b in itertools.pairwise(times[: truth.LOAD_CAP + 1]))
    assert times[truth.LOAD_CAP] == times[-1]
    assert truth.prep_s(1.0, 0) == truth.MIN_PREP_S


def test_congestion_peaks_at_rush_hours_and_is_lighter_on_weekends() -> None:
    hours = np.arange(24) + 0.5
    weekday = truth.congestion(hours, 1.0, weekend=False)
    assert weekday.argmax() == 17
    assert weekday[8] > weekday[11] > weekday[3]
    assert truth.congestion(17.75, 1.0, weekend=False) > truth.congestion(17.75, 1.0, weekend=True)
    assert truth.congestion(17.75, 1.3, weekend=False) > truth.congestion(17.75, 0.7, weekend=False)
    extreme = truth.congestion(hours, 5.0, weekend=False, noise=3.0)
    assert extreme.max() == truth.MAX_CONGESTION


def test_traffic_levels_follow_congestion() -> None:
    levels = truth.traffic_level([0.05, 0.2, 0.35, 0.5])
    assert [truth.TRAFFIC_LEVELS[i] for i in levels] == ["low", "medium", "high", "jam"]


def test_bad_weather_slows_couriers_more() -> None:
    slowdown = {c: float(truth.weather_slowdown(i, 0.0)) for c, i in CONDITION.items()}
    assert slowdown["clear"] == 0.0
    assert slowdown["snow"] > slowdown["storm"] > slowdown["rain"] > slowdown["cloudy"]
    assert truth.weather_slowdown(CONDITION["rain"], 8.0) > truth.weather_slowdown(
        CONDITION["rain"], 1.0
    )


def test_speed_falls_with_traffic_and_weather_to_a_floor() -> None:
    assert truth.speed_factor(0.1, 0.0) > truth.speed_factor(0.4, 0.0)
    assert truth.speed_factor(0.1, 0.0) > truth.speed_factor(0.1, 0.25)
    assert truth.speed_factor(0.55, 0.45) == truth.MIN_SPEED_FACTOR


def test_travel_time_grows_with_distance_and_falls_with_speed() -> None:
    assert truth.travel_s(4.0, 20.0, 0.8) == pytest.approx(2 * truth.travel_s(2.0, 20.0, 0.8))
    assert truth.travel_s(2.0, 15.0, 0.8) > truth.travel_s(2.0, 27.0, 0.8)
    jam = float(truth.speed_factor(0.5, 0.0))
    free = float(truth.speed_factor(0.05, 0.0))
    assert truth.travel_s(2.0, 20.0, jam) > truth.travel_s(2.0, 20.0, free)


def test_timeline_is_ordered() -> None:
    order = _timeline()
    assert order.created_s < order.confirmed_s < order.assigned_s < order.at_store_s
    assert order.confirmed_s < order.ready_s
    assert max(order.at_store_s, order.ready_s) < order.picked_up_s < order.delivered_s


def test_delivery_waits_for_the_slower_of_kitchen_and_courier() -> None:
    base = _timeline().delivered_s
    assert _timeline(prep_time_s=1500.0).delivered_s == pytest.approx(base + 600.0)
    # the courier arrives before the food: a closer courier changes nothing ...
    assert _timeline(to_store_s=100.0).delivered_s == base
    # ... a distant one makes the order wait
    assert _timeline(to_store_s=1500.0).delivered_s > base


def test_delivery_waits_when_no_courier_is_idle() -> None:
    busy_until = _timeline().ready_s + 300.0
    assert _timeline(courier_free_s=busy_until).delivered_s > _timeline().delivered_s


def test_delivery_grows_with_the_drop_distance() -> None:
    near, far = (truth.travel_s(km, 20.0, 0.8) for km in (1.0, 5.0))
    assert _timeline(to_drop_s=far).delivered_s > _timeline(to_drop_s=near).delivered_s


def test_customer_gives_up_when_pick_up_comes_after_patience() -> None:
    order = _timeline()
    waited_s = order.picked_up_s - order.created_s
    assert truth.is_cancelled(order, waited_s - 1.0)
    assert not truth.is_cancelled(order, waited_s + 1.0)


def test_a_delivered_order_never_takes_more_than_150_minutes() -> None:
    # picked up before the customer's patience runs out, then the slowest possible ride
    slowest, noisiest = truth.MIN_SPEED_FACTOR, truth.TRAVEL_NOISE_RANGE[1]
    longest_ride_s = max(
        truth.travel_s(DROP_RANGE_KM[1], truth.VEHICLE_KMH["scooter"], slowest, noisiest),
        truth.travel_s(truth.BICYCLE_MAX_DROP_KM, truth.VEHICLE_KMH["bicycle"], slowest, noisiest),
    )
    worst_s = truth.PATIENCE_RANGE_S[1] + longest_ride_s + MAX_DROPOFF_S
    assert worst_s <= 150 * 60


def test_a_delivered_order_never_takes_less_than_5_minutes() -> None:
    # the floors of the per-order draws in arrive.ingest.simulator.inputs
    fastest_ride_s = truth.travel_s(
        DROP_RANGE_KM[0], max(truth.VEHICLE_KMH.values()), 1.0, truth.TRAVEL_NOISE_RANGE[0]
    )
    quickest = _timeline(
        confirm_s=20.0,
        prep_time_s=truth.MIN_PREP_S,
        dispatch_s=20.0,
        to_store_s=0.0,
        handover_s=45.0,
        to_drop_s=fastest_ride_s,
        dropoff_s=60.0,
    )
    assert quickest.delivered_s - quickest.created_s >= 5 * 60
