"""The ETA contract: what is asked, what is answered, and who answers.

An ETA request is an ``order_created`` event without its envelope (``event_id``,
``type``, ``schema_version``): the fields of :data:`~arrive.schema.events.ORDER_FIELDS`
with the HTTP API's bounds, its time ``created_at`` (defaults to the server's clock)
and an optional ``request_id``. An answer is a P50 (the median arrival) and a P90 (the
promise shown to users): a model or heuristic may predict more quantiles, never fewer.
Every answer carries the variant that produced it and, when the heuristic answered,
the reason code.

HTTP routes, batch scoring and shadow scoring all call a :class:`Predictor`; none of
them knows about models, stores or fallbacks. The OpenAPI document is generated from
these types, and the routes decode with them, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Final, Literal, Protocol, get_args

import msgspec

from arrive.errors import ConfigError
from arrive.schema.events import ORDER_FIELDS, OrderCreated

P50: Final = 0.5
P90: Final = 0.9


def quantile_index(quantiles: tuple[float, ...], q: float, what: str) -> int:
    """Index of ``q`` in ``quantiles``; ConfigError naming ``what`` when absent."""
    for index, value in enumerate(quantiles):
        if abs(value - q) < 1e-9:
            return index
    raise ConfigError(f"{what}: predicts quantiles {list(quantiles)}, the service needs {q}")


# -- the request ---------------------------------------------------------------------------

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


class EtaRequest(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """One order to estimate: an ``order_created`` event without its envelope.

    Every field but ``order_id`` is optional; the more the model gets, the better
    the estimate. Unknown fields are refused (422), so typos do not pass silently.
    """

    order_id: Annotated[_Id, msgspec.Meta(description="The order's id.")]
    request_id: RequestId | None = None
    created_at: _CreatedAt | None = None
    customer_id: (
        Annotated[
            _Id,
            msgspec.Meta(
                description="The customer's id: during a model rollout, a customer sees one "
                "model version (without it, each order is assigned on its own)."
            ),
        ]
        | None
    ) = None
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


# -- the answer ----------------------------------------------------------------------------

Variant = Literal["production", "canary", "shadow", "heuristic", "control", "candidate"]
FallbackReason = Literal[
    "no_model",
    "model_error",
    "stale_features",
    "store_unavailable",
    "deadline",
    "overload",
    "kill_switch",
]
FALLBACK_REASONS: Final[tuple[FallbackReason, ...]] = get_args(FallbackReason)


class EtaAnswer(msgspec.Struct, frozen=True):
    """The ETA of one order (the response body for it).

    Attributes:
        request_id: the caller's request id, echoed.
        order_id: the order's id.
        p50_s: median delivery duration from creation, seconds.
        p90_s: 90th percentile delivery duration from creation, seconds (>= ``p50_s``).
        promised_at: order creation + ``p90_s``, UTC.
        model_version: the registry version that answered; None when the heuristic did.
        variant: ``production``, ``canary``, ``shadow`` or ``heuristic``; during a
            rollout (:mod:`arrive.rollout`), ``control`` or ``candidate``.
        fallback: None when the model answered, else why the heuristic did.
        stale_features: features that were stale or missing for this order.
        rollout: the rollout whose assignment chose the variant; None outside one.
        travel_source: where the order's travel time came from: a provider's name,
            ``cache``, ``grace`` (a cached value past its TTL) or ``builtin`` (the built-in
            estimate, also when no provider is configured or the heuristic answered).
    """

    request_id: str
    order_id: str
    p50_s: float
    p90_s: float
    promised_at: datetime
    model_version: str | None
    variant: Variant
    fallback: FallbackReason | None
    stale_features: list[str]
    rollout: str | None = None
    travel_source: Annotated[
        str,
        msgspec.Meta(
            description="Where the travel time came from: a provider's name, `cache`, "
            "`grace` or `builtin`."
        ),
    ] = "builtin"


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """The process is alive (``/healthz`` always answers 200 with this), and how its
    dependencies fare: ``status`` is ``degraded`` when ``problems`` is not empty."""

    status: Literal["ok", "degraded"] = "ok"
    ready: bool = True
    model_version: Annotated[
        str | None, msgspec.Meta(description="The model serving; null when the heuristic does.")
    ] = None
    store: Annotated[
        Literal["up", "down", "unchecked"],
        msgspec.Meta(description="The feature store, as its last ping or read found it."),
    ] = "unchecked"
    kill_switch: bool = False
    recent_answers: Annotated[
        int, msgspec.Meta(description="Answers of this worker counted in `recent_fallbacks`.")
    ] = 0
    recent_fallbacks: Annotated[
        dict[str, int],
        msgspec.Meta(description="Of the recent answers, those of the heuristic by reason."),
    ] = {}
    problems: Annotated[
        list[str], msgspec.Meta(description="What is wrong with a dependency, for people.")
    ] = []


class ModelFinding(msgspec.Struct, frozen=True, kw_only=True):
    """What checking one model version found.

    Attributes:
        version: the registry version checked.
        status: ``ok`` (its probe batch reproduces the reference predictions),
            ``unverified`` (it parses and scores, but was registered without reference
            predictions) or ``broken`` (why in ``reason``).
        reason: what was found, in one line.
    """

    version: str
    status: Literal["ok", "unverified", "broken"]
    reason: str


class ReloadAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What a reload found and what serves after it.

    Attributes:
        model_version: the version serving now (None: the heuristic answers).
        alias_version: the version the served alias points at.
        checks: each version whose files were checked by this reload.
    """

    model_version: str | None
    alias_version: str | None = None
    checks: list[ModelFinding] = msgspec.field(default_factory=list)


# -- who answers ---------------------------------------------------------------------------


class Predictor(Protocol):
    """The transport-neutral ETA hot path."""

    async def predict(
        self, orders: Sequence[OrderCreated], request_ids: Sequence[str]
    ) -> list[EtaAnswer]:
        """One answer per order, in order; never raises for store, deadline, overload or
        model failures (those answer with the heuristic and a reason code)."""
        ...

    def ready(self) -> tuple[bool, str]:
        """``(True, "")`` when this replica can answer (a model, or at least a heuristic
        learnt from the registry, is loaded), else the reason. Dependencies such as the
        feature store do not count: their failures are answered with the heuristic,
        and reported by :meth:`health`. Ready, with a note, when the model serving
        is not the alias's (the alias's version was refused)."""
        ...

    def health(self) -> Health:
        """How the replica and its dependencies fare (no IO: cached state)."""
        ...

    async def reload(self) -> ReloadAnswer:
        """Re-read the served alias from the registry, check its files; say what serves."""
        ...

    def set_kill_switch(self, on: bool) -> None:
        """Force (or stop forcing) the heuristic for every answer (reason ``kill_switch``)."""
        ...


# -- between requests and events -----------------------------------------------------------


_REQUEST_FIELDS: Final = ("order_id", *ORDER_FIELDS, "attributes")
CUSTOMER_ATTRIBUTE: Final = "customer_id"
"""The order attribute :func:`to_order` carries a request's ``customer_id`` in (an
``order_created`` event has no customer field; only rollout assignment reads it)."""


def to_order(request: EtaRequest, request_id: str, now: datetime) -> OrderCreated:
    """The ``order_created`` event the predictor scores for ``request``.

    Written out field by field, unlike :func:`to_request`: on the hot path, copying
    :data:`~arrive.schema.events.ORDER_FIELDS` in a loop took 2-4 times as long.
    ``tests/schema/test_eta.py`` checks that every order field is copied.
    """
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
        attributes=request.attributes
        if request.customer_id is None
        else {**request.attributes, CUSTOMER_ATTRIBUTE: request.customer_id},
    )


def to_request(order: OrderCreated) -> EtaRequest:
    """The ETA request of an ``order_created`` event (its fields, created at its time):
    :func:`to_order`'s inverse, for clients that hold events (the demo's replay)."""
    fields = {name: getattr(order, name) for name in _REQUEST_FIELDS}
    customer = order.attributes.get(CUSTOMER_ATTRIBUTE)
    if isinstance(customer, str) and customer:
        fields["attributes"] = {
            k: v for k, v in order.attributes.items() if k != CUSTOMER_ATTRIBUTE
        }
        return EtaRequest(created_at=order.event_time, customer_id=customer, **fields)
    return EtaRequest(created_at=order.event_time, **fields)
