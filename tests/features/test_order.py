"""The order's own request-time features (size, value, ids, distance), offline and
online, pinned on hand-made orders."""

from __future__ import annotations

from arrive.testing.history import History, at, features_both_ways, north

LAT, LON = 52.5, 13.4


def _history() -> History:
    history = History()
    history.order(
        "full",
        at(),
        items=3,
        distinct_items=2,
        subtotal=25.5,
        store_category="pizza",
        courier_id="c1",
        pickup_lat=LAT,
        pickup_lon=LON,
        drop_lat=north(LAT, 2.0),  # 2 km due north of the pickup
        drop_lon=LON,
    )
    history.order("bare", at(minutes=1), store_id="s2", market_id="m2")
    return history


def test_the_order_s_fields_and_its_great_circle_distance() -> None:
    features_both_ways(_history())["full"].expect(
        {
            "items": 3.0,
            "distinct_items": 2.0,
            "subtotal": 25.5,
            "store_id": "s1",
            "market_id": "m1",
            "store_category": "pizza",
            "courier_id": "c1",
            "distance_km": 2.0,
        }
    )


def test_fields_the_order_lacks_are_missing_not_zero() -> None:
    features_both_ways(_history())["bare"].expect(
        {
            "items": None,
            "distinct_items": None,
            "subtotal": None,
            "store_id": "s2",
            "store_category": None,
            "courier_id": None,
            "distance_km": None,
        }
    )


def test_a_field_no_order_carries_is_not_built() -> None:
    history = History()
    history.order("q", at(), items=1)
    q = features_both_ways(history)["q"]
    q.expect({"items": 1.0})
    assert not {"subtotal", "distance_km", "store_category"} & set(q.offline)
