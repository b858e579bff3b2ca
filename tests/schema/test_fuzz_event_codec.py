"""Fuzzing the canonical event decoder: whatever the bytes, ``decode_event`` returns an
event or raises ``SchemaError`` naming a field, never anything else (a stream's
poison entry must become a dead letter, not stop ingestion)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from arrive.errors import SchemaError
from arrive.schema.codec import decode_event
from arrive.schema.events import EVENT_TYPES, Event

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
_FIELDS = (
    "event_id",
    "event_time",
    "schema_version",
    "order_id",
    "store_id",
    "market_id",
    "courier_id",
    "pickup_lat",
    "lat",
    "lon",
    "status",
    "items",
    "subtotal",
    "attributes",
    "temperature_c",
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_events = st.fixed_dictionaries(
    {"type": st.sampled_from([*EVENT_TYPES, "teleported", ""])},
    optional=dict.fromkeys(_FIELDS, _values),
)
_NOT_UTF8 = (b"\xff", b"\xfe", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80")


def _decodes_or_refuses(payload: bytes | str) -> None:
    try:
        event = decode_event(payload)
    except SchemaError as exc:
        refused = exc
    else:
        assert isinstance(event, Event)
        return
    assert refused.field
    assert refused.reason


@FUZZ
@given(st.binary(max_size=300))
@example(b"")
@example(b'{"type":"order_created","event_id":"p5\xff\xfe","order_id":"p5"}')
def test_any_bytes_decode_or_raise_schema_error(payload: bytes) -> None:
    _decodes_or_refuses(payload)


@FUZZ
@given(_events)
@example(
    {"type": "order_confirmed", "event_id": "e", "order_id": "o",
     "event_time": "0001-01-01T00:00:00+01:00"}
)  # fmt: skip
def test_structured_garbage_decodes_or_raises_schema_error(event: dict[str, Any]) -> None:
    _decodes_or_refuses(json.dumps(event).encode())
    _decodes_or_refuses(json.dumps(event, ensure_ascii=False))


@FUZZ
@given(_events, st.integers(min_value=0), st.sampled_from(_NOT_UTF8))
def test_invalid_utf8_anywhere_is_a_schema_error(
    event: dict[str, Any], at: int, bad: bytes
) -> None:
    text = json.dumps(event, ensure_ascii=False).encode()
    at %= len(text) + 1
    _decodes_or_refuses(text[:at] + bad + text[at:])


@FUZZ
@given(st.text(max_size=40).map(lambda s: '{"type":"order_confirmed","event_id":"' + s))
@example('{"type":"order_confirmed","event_id":"\ud800","order_id":"o"}')
def test_any_text_decodes_or_raises_schema_error(payload: str) -> None:
    _decodes_or_refuses(payload)


def test_invalid_utf8_is_named_by_its_field() -> None:
    payload = (
        b'{"type":"order_created","event_id":"p5\xff\xfe","event_time":"2026-12-02T10:00:00Z",'
        b'"schema_version":1,"order_id":"p5"}'
    )
    with pytest.raises(SchemaError) as refused:
        decode_event(payload)
    assert (refused.value.field, refused.value.reason) == (
        "event_id",
        "not valid UTF-8 (invalid start byte)",
    )
