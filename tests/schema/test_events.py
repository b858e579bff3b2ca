"""Canonical event schema v1: JSON round trips, columnar form, refusals naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import polars as pl
import pytest

from arrive.errors import SchemaError
from arrive.schema import (
    EVENT_TYPES,
    Cancelled,
    CourierAssigned,
    CourierPing,
    Delivered,
    Event,
    FoodReady,
    MarketSnapshot,
    OrderConfirmed,
    OrderCreated,
    PickedUp,
    TravelTimeObservation,
    WeatherObservation,
    decode_event,
    decode_events,
    encode_event,
)
from arrive.schema.frame import conform, events_to_frame, frame_to_events

T = datetime(2025, 3, 3, 12, 30, 15, 123456, tzinfo=UTC)

EXAMPLES: list[Event] = [
    OrderCreated(
        event_id="e1",
        event_time=T,
        order_id="o1",
        store_id="s1",
        market_id="m1",
        pickup_lat=52.52,
        pickup_lon=13.40,
        drop_lat=52.50,
        drop_lon=13.45,
        items=3,
        distinct_items=2,
        subtotal=24.5,
        store_category="pizza",
        courier_id=None,
        attributes={"traffic": "high", "festival": False, "rating": 4.5, "n": 2},
    ),
    OrderConfirmed(event_id="e2", event_time=T, order_id="o1", store_id="s1"),
    FoodReady(event_id="e3", event_time=T, order_id="o1"),
    CourierAssigned(
        event_id="e4", event_time=T, order_id="o1", courier_id="c1", vehicle="bicycle", rating=4.8
    ),
    PickedUp(event_id="e5", event_time=T, order_id="o1", courier_id="c1"),
    Delivered(event_id="e6", event_time=T, order_id="o1"),
    Cancelled(event_id="e7", event_time=T, order_id="o2", reason="customer_late"),
    CourierPing(
        event_id="e8",
        event_time=T,
        courier_id="c1",
        lat=52.5,
        lon=13.4,
        status="idle",
        market_id="m1",
    ),
    WeatherObservation(
        event_id="e9",
        event_time=T,
        market_id="m1",
        condition="rain",
        temperature_c=7.5,
        precipitation_mm=1.2,
    ),
    TravelTimeObservation(
        event_id="e11",
        event_time=T,
        provider="osrm",
        travel_time_s=612.4,
        order_id="o1",
        origin_lat=52.52,
        origin_lon=13.40,
        destination_lat=52.50,
        destination_lon=13.45,
        distance_m=4210.0,
    ),
    MarketSnapshot(
        event_id="e10",
        event_time=T,
        market_id="m1",
        couriers_on_shift=40,
        couriers_busy=31,
        outstanding_orders=52,
    ),
]


def test_every_event_type_has_an_example() -> None:
    assert {e.__struct_config__.tag for e in EXAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_json_round_trip(event: Event) -> None:
    data = encode_event(event)
    assert decode_event(data) == event
    assert msgspec.json.decode(data)["schema_version"] == 1


def test_columnar_round_trip_keeps_microseconds_and_attributes() -> None:
    frame = events_to_frame(EXAMPLES)
    assert frame.height == len(EXAMPLES)
    assert list(frame_to_events(frame)) == sorted(
        EXAMPLES, key=lambda e: (e.event_time, e.event_id)
    )


def test_times_are_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = Delivered(
        event_id="e", event_time=datetime(2025, 1, 1, 14, 0, tzinfo=plus_two), order_id="o"
    )
    assert event.event_time == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert event.event_time.tzinfo is UTC
    decoded = decode_event(
        b'{"type":"delivered","event_id":"e","event_time":"2025-01-01T14:00:00+02:00","order_id":"o"}'
    )
    assert decoded == event


BASE = '"event_id":"e","event_time":"2025-01-01T00:00:00Z"'


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        ("{", "$", "not valid JSON"),
        ("[1, 2]", "$", "Expected `object`"),
        (f'{{"type":"teleported",{BASE}}}', "type", "unknown event type"),
        (f'{{{BASE},"order_id":"o"}}', "type", "required field is missing"),
        (f'{{"type":"delivered",{BASE}}}', "order_id", "required field is missing"),
        (f'{{"type":"delivered",{BASE},"order_id":7}}', "order_id", "Expected `str`, got `int`"),
        (f'{{"type":"delivered",{BASE},"order_id":""}}', "order_id", "length >= 1"),
        (
            '{"type":"delivered","event_id":"e","event_time":"2025-01-01T00:00:00","order_id":"o"}',
            "event_time",
            "timezone-aware",
        ),
        (
            '{"type":"delivered","event_id":"e","event_time":"yesterday","order_id":"o"}',
            "event_time",
            "datetime",
        ),
        (
            f'{{"type":"courier_ping",{BASE},"courier_id":"c","lat":91,"lon":0,"status":"idle"}}',
            "lat",
            "<= 90",
        ),
        (
            f'{{"type":"courier_ping",{BASE},"courier_id":"c","lat":1,"lon":0,"status":"asleep"}}',
            "status",
            "Invalid enum value",
        ),
        (
            f'{{"type":"market_snapshot",{BASE},"market_id":"m","couriers_busy":-1}}',
            "couriers_busy",
            ">= 0",
        ),
        (
            f'{{"type":"travel_time_observation",{BASE},"provider":"osrm","travel_time_s":-1}}',
            "travel_time_s",
            ">= 0.0",
        ),
        (
            f'{{"type":"travel_time_observation",{BASE},"provider":"osrm","travel_time_s":1e9}}',
            "travel_time_s",
            "<= 86400.0",
        ),
        (
            f'{{"type":"travel_time_observation",{BASE},"travel_time_s":60}}',
            "provider",
            "required field is missing",
        ),
        (
            f'{{"type":"travel_time_observation",{BASE},"provider":"osrm","travel_time_s":"fast"}}',
            "travel_time_s",
            "Expected `float`",
        ),
        (
            f'{{"type":"delivered",{BASE},"order_id":"o","schema_version":2}}',
            "schema_version",
            "Invalid",
        ),
    ],
)
def test_bad_input_names_the_field_and_the_reason(payload: str, field: str, reason: str) -> None:
    with pytest.raises(SchemaError) as caught:
        decode_event(payload)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_json_lines_errors_name_the_line() -> None:
    lines = [encode_event(EXAMPLES[5]), b'{"type":"delivered"}']
    with pytest.raises(SchemaError, match="line 2"):
        decode_events(lines)


def test_unknown_columns_are_refused_by_the_event_log() -> None:
    frame = events_to_frame(EXAMPLES[:1]).with_columns(color=pl.lit("red"))
    with pytest.raises(SchemaError, match="color"):
        conform(frame)


def test_a_bad_row_of_the_event_log_names_its_row() -> None:
    frame = events_to_frame(EXAMPLES[7:8]).with_columns(lat=pl.lit(123.0))
    with pytest.raises(SchemaError, match=r"row 0: lat"):
        list(frame_to_events(frame))
