"""Fuzzing the ETA request body decoder of the HTTP service: any body is a request (that
becomes an ``order_created`` event) or an ``HttpError`` 400 or 422 naming the field,
never another exception (which the service would answer with a 500)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from arrive.schema.eta import EtaRequest, to_order
from arrive.serving.http.errors import HttpError
from arrive.serving.http.routes import decode
from arrive.serving.http.schema import BatchRequest, KillSwitchRequest

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
DECODERS = (
    msgspec.json.Decoder(EtaRequest),
    msgspec.json.Decoder(BatchRequest),
    msgspec.json.Decoder(KillSwitchRequest),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_FIELDS = (*EtaRequest.__struct_fields__, "orders", "on", "colour")
_requests = st.dictionaries(st.sampled_from(_FIELDS), _values, max_size=6)
_NOT_UTF8 = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82")


def _answers_or_refuses(body: bytes) -> None:
    for decoder in DECODERS:
        try:
            payload = decode(decoder, body)
        except HttpError as exc:
            refused: HttpError | None = exc
        else:
            refused = None
        if refused is not None:
            assert refused.status in (400, 422), refused.message
            continue
        orders = payload.orders if isinstance(payload, BatchRequest) else [payload]
        for order in orders:
            if isinstance(order, EtaRequest):
                assert to_order(order, "r-1", NOW).order_id == order.order_id


@FUZZ
@given(st.binary(max_size=300))
@example(b'{"order_id":"\xff\xfe"}')
@example(b'{"orders":[{"order_id":"o","created_at":"1970-01-01T00:00:00+23:59"}]}')
def test_any_body_is_a_request_or_a_400_or_422(body: bytes) -> None:
    _answers_or_refuses(body)


@FUZZ
@given(_requests)
def test_structured_garbage_is_a_request_or_a_400_or_422(request: dict[str, Any]) -> None:
    _answers_or_refuses(json.dumps(request).encode())
    _answers_or_refuses(json.dumps({"orders": [request, request]}).encode())


@FUZZ
@given(_requests, st.integers(min_value=0), st.sampled_from(_NOT_UTF8))
def test_invalid_utf8_anywhere_is_a_400(request: dict[str, Any], at: int, bad: bytes) -> None:
    text = json.dumps({"orders": [request]}, ensure_ascii=False).encode()
    at %= len(text) + 1
    _answers_or_refuses(text[:at] + bad + text[at:])
