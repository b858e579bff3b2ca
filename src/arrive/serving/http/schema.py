"""The HTTP contract of the ETA service: request and response bodies as msgspec types.

The OpenAPI document is generated from these types, and the routes decode with
them, so the two cannot drift apart. An ETA request is an ``order_created`` event
without its envelope (``event_id``, ``type``, ``schema_version``); the event time
is ``created_at`` (defaults to the server's clock), and ``request_id`` is optional.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

import msgspec

from arrive.schema.events import OrderCreated
from arrive.serving.answer import EtaAnswer

REQUEST_ID_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,128}$"

RequestId = Annotated[
    str,
    msgspec.Meta(
        pattern=REQUEST_ID_PATTERN,
        description="Caller's id of the request (1-128 of A-Z a-z 0-9 . _ : -).",
    ),
]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_Lat = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
_Lon = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
# Counts are numbers with multipleOf 1 rather than integers: JSON Schema counts 3.0 as an
# integer, so the decoder must accept it too for the document to be accurate.
_Count = Annotated[
    float, msgspec.Meta(ge=0, le=1_000_000, multiple_of=1, description="A whole number >= 0.")
]
_Money = Annotated[float, msgspec.Meta(ge=0.0, le=1e12)]
_Attribute = Annotated[str, msgspec.Meta(max_length=1024)] | float | bool
_CreatedAt = Annotated[
    datetime,
    msgspec.Meta(
        tz=True,
        description="When the order was placed (RFC 3339 with an offset, years 1970-2999); "
        "defaults to the server's clock. `promised_at` is this plus `p90_s`.",
        extra_json_schema={"pattern": r"^(19[7-9][0-9]|2[0-9]{3})-"},
    ),
]

EARLIEST_CREATED_AT: Final = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
LATEST_CREATED_AT: Final = datetime.fromisoformat("3000-01-01T00:00:00+00:00")


class EtaRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One order to estimate: an ``order_created`` event without its envelope.

    Every field but ``order_id`` is optional; the more the model gets, the better
    the estimate. Unknown fields are refused (422), so typos do not pass silently.
    """

    order_id: Annotated[_Id, msgspec.Meta(description="The order's id.")]
    request_id: RequestId | None = None
    created_at: _CreatedAt | None = None
    store_id: _Id | None = None
    market_id: _Id | None = None
    pickup_lat: _Lat | None = None
    pickup_lon: _Lon | None = None
    drop_lat: _Lat | None = None
    drop_lon: _Lon | None = None
    items: _Count | None = None
    distinct_items: _Count | None = None
    subtotal: _Money | None = None
    store_category: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    courier_id: _Id | None = None
    attributes: Annotated[
        dict[Annotated[str, msgspec.Meta(max_length=256)], _Attribute],
        msgspec.Meta(
            max_length=256,
            description="Context known at creation (e.g. weather, traffic), by the source's names.",
        ),
    ] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.request_id is not None and self.request_id.endswith("\n"):
            raise ValueError("request_id: must not end with a line break")
        created = self.created_at
        if created is not None and not EARLIEST_CREATED_AT <= created < LATEST_CREATED_AT:
            raise ValueError("created_at: must be in the years 1970-2999")


class BatchRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Several orders in one request (at most the service's ``max_batch``)."""

    orders: Annotated[
        list[EtaRequest],
        msgspec.Meta(min_length=1, description="The orders, answered in the same order."),
    ]


class BatchAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The answers of a batch, one per order and in the same order."""

    answers: list[EtaAnswer]


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """Why a request was refused (every 4xx and 5xx answer has this body)."""

    error: Annotated[str, msgspec.Meta(description="A stable code, e.g. `validation_error`.")]
    message: Annotated[str, msgspec.Meta(description="What went wrong, for people.")]
    field: Annotated[
        str | None,
        msgspec.Meta(description="Path of the offending field, e.g. `orders[3].pickup_lat`."),
    ] = None
    request_id: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """Whether this replica can answer (a model, or at least the heuristic, is loaded);
    ``reason`` says why not, or, when ready, why the version serving is not the alias's.
    The feature store's state does not count (see ``/healthz``)."""

    ready: bool
    reason: str | None = None


class KillSwitchRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Turn the kill switch on (every answer from the heuristic) or off."""

    on: bool


class KillSwitchState(msgspec.Struct, frozen=True, kw_only=True):
    """The kill switch's state after the call."""

    kill_switch: bool


def to_order(request: EtaRequest, request_id: str, now: datetime) -> OrderCreated:
    """The ``order_created`` event the predictor scores for ``request``."""
    return OrderCreated(
        event_id=f"eta:{request_id}",
        event_time=request.created_at or now,
        order_id=request.order_id,
        store_id=request.store_id,
        market_id=request.market_id,
        pickup_lat=request.pickup_lat,
        pickup_lon=request.pickup_lon,
        drop_lat=request.drop_lat,
        drop_lon=request.drop_lon,
        items=None if request.items is None else int(request.items),
        distinct_items=None if request.distinct_items is None else int(request.distinct_items),
        subtotal=request.subtotal,
        store_category=request.store_category,
        courier_id=request.courier_id,
        attributes=request.attributes,
    )


_REQUEST_FIELDS: Final = frozenset(EtaRequest.__struct_fields__) - {"request_id", "created_at"}


def to_request(order: OrderCreated) -> EtaRequest:
    """The ETA request of an ``order_created`` event (its fields, created at its time):
    :func:`to_order`'s inverse, for clients that hold events (the demo's replay)."""
    fields = {name: getattr(order, name) for name in _REQUEST_FIELDS}
    return EtaRequest(created_at=order.event_time, **fields)
