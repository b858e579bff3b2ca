"""The built-in travel estimate (great-circle distance × detour / speed by local hour),
offline and online, pinned on hand-made orders."""

from __future__ import annotations

from datetime import UTC, datetime

from arrive.testing.history import History, features_both_ways, north

LAT, LON = 52.5, 13.4
BERLIN = "Europe/Berlin"  # UTC+1 in March
_ROUTE = {"pickup_lat": LAT, "pickup_lon": LON, "drop_lat": north(LAT, 3.0), "drop_lon": LON}


def _history() -> History:
    history = History()
    history.order("morning", datetime(2025, 3, 3, 7, 30, tzinfo=UTC), **_ROUTE)  # 08:30 local
    history.order("evening", datetime(2025, 3, 3, 17, 30, tzinfo=UTC), **_ROUTE)  # 18:30 local
    history.order("no-drop", datetime(2025, 3, 3, 9, tzinfo=UTC), pickup_lat=LAT, pickup_lon=LON)
    return history


def test_the_estimate_uses_the_speed_of_the_local_hour() -> None:
    both = features_both_ways(_history(), BERLIN)
    # 3 km × 1.3 detour = 3.9 km; at 08:00-08:59 the profile says 14 km/h, at 18:00-18:59 13 km/h
    both["morning"].expect({"travel_estimate_s": 3.9 / 14 * 3600})  # 1002.857… s
    both["evening"].expect({"travel_estimate_s": 1080.0})  # 3.9 / 13 × 3600
    in_utc = features_both_ways(_history(), "UTC")
    in_utc["morning"].expect({"travel_estimate_s": 877.5})  # 07:30 UTC: 16 km/h


def test_an_order_without_a_drop_point_has_no_estimate() -> None:
    features_both_ways(_history(), BERLIN)["no-drop"].expect({"travel_estimate_s": None})


def test_without_coordinates_the_group_is_left_out() -> None:
    history = History()
    history.order("q", datetime(2025, 3, 3, 9, tzinfo=UTC))
    q = features_both_ways(history, extra=("travel_estimate_s",))["q"]
    assert q.left_out["travel (group)"].startswith("orders carry no pickup_lat")
    q.expect({"travel_estimate_s": None})
