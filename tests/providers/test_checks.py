"""The checks between a vendor's answer and a feature: plausibility bounds, JSON decoding,
Retry-After, the built-in estimate and the leg's own validation."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest

from arrive.errors import SchemaError
from arrive.features import travel
from arrive.providers import plausible
from arrive.providers.base import Leg, ProviderError
from arrive.providers.builtin import BuiltinProvider
from arrive.providers.http import decode_body, retry_after_s
from arrive.testing.provider_contract import leg

AT = datetime(2025, 3, 4, 8, 30, tzinfo=UTC)


def _reason(call: object) -> str:
    with pytest.raises(ProviderError) as caught:
        call()  # type: ignore[operator]
    return caught.value.reason


def test_24_hours_for_2_km_is_absurd_and_an_hour_is_not() -> None:
    trip = leg(km_east=2.0, km_north=0.0)
    assert 1.9 < trip.great_circle_km < 2.1
    assert _reason(lambda: plausible.travel_time("v", trip, 24 * 3600.0)) == "absurd"
    assert plausible.travel_time("v", trip, 3600.0).seconds == 3600.0
    assert _reason(lambda: plausible.travel_time("v", trip, 1.0)) == "absurd"  # 7,200 km/h


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        ("12", "wrong_shape"),
        (True, "wrong_shape"),
        (-3.0, "negative"),
        (math.nan, "not_finite"),
        (math.inf, "not_finite"),
        ([1], "wrong_shape"),
    ],
)
def test_a_bad_duration_is_refused_with_its_reason(value: object, reason: str) -> None:
    assert _reason(lambda: plausible.travel_time("v", leg(), value)) == reason


def test_a_road_far_longer_than_the_leg_is_absurd() -> None:
    assert _reason(lambda: plausible.travel_time("v", leg(), 600.0, 500.0)) == "absurd"


@pytest.mark.parametrize(
    ("temperature", "rain", "wind", "reason"),
    [
        (95.0, 0.0, 5.0, "absurd"),
        (10.0, -1.0, 5.0, "negative"),
        (math.nan, 0.0, 5.0, "not_finite"),
        (None, 0.0, 5.0, "empty"),
        ("warm", 0.0, 5.0, "wrong_shape"),
        (10.0, 0.0, 900.0, "absurd"),
    ],
)
def test_bad_weather_is_refused(
    temperature: object, rain: object, wind: object, reason: str
) -> None:
    assert _reason(lambda: plausible.weather("v", temperature, rain, wind)) == reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"<html>", "garbage"),
        (b"\xff\xfe{", "garbage"),
        (b"[" * 100_000, "garbage"),
    ],
)
def test_a_body_that_is_not_json_is_refused(body: bytes, reason: str) -> None:
    assert _reason(lambda: decode_body("v", body)) == reason


def test_nan_tokens_decode_for_the_checks_to_refuse() -> None:
    assert math.isnan(decode_body("v", b'{"d": NaN}')["d"])


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("7", now) == 7.0
    assert retry_after_s("Tue, 04 Mar 2025 12:00:30 GMT", now) == 30.0
    assert retry_after_s("Tue, 04 Mar 2025 11:00:00 GMT", now) == 0.0
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None


def test_the_builtin_estimate_is_the_feature_table_at_the_local_hour() -> None:
    trip = leg(at=AT)
    answer = asyncio.run(BuiltinProvider("Europe/Lisbon").travel_time(trip, timeout_s=0.0))
    expected = travel.estimate_s(trip.great_circle_km, 8)  # Lisbon is UTC in March
    assert answer.seconds == pytest.approx(expected)
    assert answer.source == "builtin"
    summer = leg(at=AT + timedelta(days=120))  # Lisbon is UTC+1 in July: local hour 9
    later = asyncio.run(BuiltinProvider("Europe/Lisbon").travel_time(summer, timeout_s=0.0))
    assert later.seconds == pytest.approx(travel.estimate_s(summer.great_circle_km, 9))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ((91.0, 0.0, 0.0, 0.0), "origin_lat"),
        ((0.0, 0.0, math.nan, 0.0), "dest_lat"),
        ((0.0, 0.0, 0.0, 181.0), "dest_lon"),
    ],
)
def test_a_leg_with_impossible_coordinates_is_refused(
    fields: tuple[float, float, float, float], field: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        Leg(*fields, AT)
    assert caught.value.field == field


def test_a_leg_needs_an_aware_time() -> None:
    with pytest.raises(SchemaError):
        Leg(0.0, 0.0, 0.0, 0.0, datetime(2025, 3, 4, 8))
