"""Weather in the order's market (the latest observation within 3 h), offline and
online, pinned on a hand-made history."""

from __future__ import annotations

from arrive.testing.history import History, at, features_both_ways

_WEATHER = ("weather_condition", "temperature_c", "precipitation_mm")


def _history() -> History:
    history = History()
    history.weather("m1", at(hours=-4), "clear", 20.0, 0.0)
    history.weather("m1", at(hours=-3), "rain", 12.5, 1.5)  # T-3h exactly: still fresh
    history.weather("m1", at(), "storm", 9.0, 8.0)  # at T: does not count
    history.weather("m2", at(hours=-3, seconds=-1), "snow", -2.0, 0.5)  # 1 s past the TTL
    history.weather("m4", at(minutes=-10), "fog")  # no temperature or precipitation
    for market in ("m1", "m2", "m3", "m4"):
        history.order(f"q-{market}", at(), market_id=market)
    return history


def test_the_latest_observation_before_t_within_three_hours() -> None:
    q = features_both_ways(_history())["q-m1"]
    q.expect({"weather_condition": "rain", "temperature_c": 12.5, "precipitation_mm": 1.5})


def test_an_observation_older_than_its_ttl_is_missing_not_zero() -> None:
    features_both_ways(_history())["q-m2"].expect(dict.fromkeys(_WEATHER))


def test_a_market_without_observations_has_weather_missing() -> None:
    features_both_ways(_history())["q-m3"].expect(dict.fromkeys(_WEATHER))


def test_values_the_observation_lacks_are_missing() -> None:
    q = features_both_ways(_history())["q-m4"]
    q.expect({"weather_condition": "fog", "temperature_c": None, "precipitation_mm": None})


def test_an_order_without_a_market_has_no_weather() -> None:
    history = _history()
    history.order("q-none", at(), market_id=None)
    features_both_ways(history)["q-none"].expect(dict.fromkeys(_WEATHER))


def test_without_observations_the_group_is_left_out() -> None:
    history = History()
    history.order("q", at())
    q = features_both_ways(history, extra=_WEATHER)["q"]
    assert q.left_out["weather (group)"] == "the event log has no weather observations"
    q.expect(dict.fromkeys(_WEATHER))
