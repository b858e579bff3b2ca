"""Provider answers become canonical events that decode back to themselves; bad values
are refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from arrive.errors import SchemaError
from arrive.providers.base import Leg, TravelTime, Weather
from arrive.providers.observations import (
    observation_lines,
    travel_observation,
    weather_observation,
)
from arrive.schema.codec import decode_events

AT = datetime(2025, 3, 3, 12, 0, 0, 250_000, tzinfo=UTC)
LEG = Leg(52.52, 13.40, 52.50, 13.45, AT)


def test_answers_round_trip_through_json_lines() -> None:
    travel = travel_observation(LEG, TravelTime(612.4, "osrm", 4.21), "o1")
    weather = weather_observation("m1", Weather(7.5, 1.2, 20.0, "open-meteo"), AT)
    assert decode_events(observation_lines([travel, weather]).splitlines()) == [travel, weather]
    assert (travel.provider, travel.travel_time_s, travel.distance_m) == ("osrm", 612.4, 4210.0)
    assert travel.event_time == AT
    assert travel.order_id == "o1"
    assert weather.condition == "rain"


def test_the_same_question_gets_the_same_event_id() -> None:
    first = travel_observation(LEG, TravelTime(600.0, "osrm"), "o1")
    again = travel_observation(LEG, TravelTime(600.0, "cache"), "o1")
    other = travel_observation(LEG, TravelTime(600.0, "osrm"), "o2")
    assert first.event_id == again.event_id != other.event_id


@pytest.mark.parametrize(
    ("seconds", "reason"), [(-1.0, ">= 0.0"), (float("nan"), None), (1e7, "<= 86400.0")]
)
def test_a_bad_time_is_refused_naming_the_field(seconds: float, reason: str | None) -> None:
    with pytest.raises(SchemaError, match=reason) as caught:
        travel_observation(LEG, TravelTime(seconds, "osrm"), None)
    assert caught.value.field == "travel_time_s"
