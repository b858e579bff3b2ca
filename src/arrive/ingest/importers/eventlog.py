"""The canonical events an imported order produces, built as one columnar frame.

Per order: ``order_created`` at ``created_at`` (store, market, category,
courier, coordinates, items, subtotal, attributes), one event per mapped
lifecycle timestamp that has a value (``order_confirmed``, ``food_ready``,
``courier_assigned``, ``picked_up``), ``delivered`` at ``delivered_at``, and a
``market_snapshot`` at ``created_at`` when market counts are mapped. When the
pickup is the courier's position at acceptance, ``order_created`` leaves it out
(it is not known yet) and a ``courier_ping`` at ``assigned_at`` carries it. Event ids
are ``"<order_id>:<type>"``, so a re-import gives the same ids.

An event whose required field has no value (a ``courier_assigned`` without a
courier, a ``market_snapshot`` without a market) is not written; the number left
out is returned so that the summary can say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from arrive.ingest.importers.mapping import MARKET, Mapping
from arrive.schema.events import ORDER_FIELDS, SCHEMA_VERSION
from arrive.schema.frame import EVENT_COLUMNS, conform

#: Lifecycle timestamp → (event type, order fields it carries).
LIFECYCLE_EVENTS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "confirmed_at": ("order_confirmed", ("store_id",)),
    "ready_at": ("food_ready", ("store_id",)),
    "assigned_at": ("courier_assigned", ("courier_id",)),
    "picked_up_at": ("picked_up", ("courier_id",)),
}
_PICKUP: Final = ("pickup_lat", "pickup_lon")
# Fields without which the event type is invalid (the others are optional).
_REQUIRED: Final = {"courier_assigned": "courier_id", "market_snapshot": "market_id"}


def order_events(orders: pl.DataFrame, mapping: Mapping) -> tuple[pl.DataFrame, dict[str, int]]:
    """The event log of imported ``orders`` and the events left out, by type.

    Args:
        orders: rows that passed every check, with the columns of
            :func:`~.transform.parse_orders` (all lifecycle columns present).

    Returns:
        The conformed event frame (time-ordered) and ``{type: events not written}``.
    """
    courier_pickup = mapping.coordinates.pickup_is == "courier_at_accept"
    created_fields = [f for f in ORDER_FIELDS if not (courier_pickup and f in _PICKUP)]
    parts = [
        _event(orders, "order_created", "created_at", created_fields, _attributes(mapping)),
        _event(orders, "delivered", "delivered_at", ("courier_id",)),
    ]
    skipped: dict[str, int] = {}
    if courier_pickup:
        parts.append(_accept_ping(orders, skipped))
    for column, (kind, fields) in LIFECYCLE_EVENTS.items():
        if getattr(mapping.timestamps, column) is not None:
            timed = orders.filter(pl.col(column).is_not_null())
            if timed.height < orders.height:  # the time is missing, or dropped as inconsistent
                skipped[kind] = orders.height - timed.height
            parts.append(_event(_usable(timed, kind, skipped), kind, column, fields))
    counts = [name for name in MARKET if getattr(mapping.market, name) is not None]
    if counts:
        observed = orders.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in counts))
        usable = _usable(observed, "market_snapshot", skipped)
        parts.append(_event(usable, "market_snapshot", "created_at", ("market_id", *counts)))
    return conform(pl.concat(parts, how="diagonal_relaxed")), skipped


def _accept_ping(orders: pl.DataFrame, skipped: dict[str, int]) -> pl.DataFrame:
    """The courier's position at acceptance as a ``courier_ping`` (busy: it has a task)."""
    known = orders.filter(
        pl.all_horizontal(pl.col(c).is_not_null() for c in ("assigned_at", "courier_id", *_PICKUP))
    )
    if known.height < orders.height:
        skipped["courier_ping"] = orders.height - known.height
    return known.select(
        (pl.col("order_id") + ":courier_ping").alias("event_id"),
        pl.lit("courier_ping").alias("type"),
        pl.col("assigned_at").alias("event_time"),
        pl.lit(SCHEMA_VERSION, EVENT_COLUMNS["schema_version"]).alias("schema_version"),
        pl.col("courier_id"),
        pl.col("market_id"),
        pl.col("pickup_lat").alias("lat"),
        pl.col("pickup_lon").alias("lon"),
        pl.lit("busy").alias("status"),
    )


def _usable(events_of: pl.DataFrame, kind: str, skipped: dict[str, int]) -> pl.DataFrame:
    """The rows of ``events_of`` that have the field a ``kind`` event requires."""
    field = _REQUIRED.get(kind)
    if field is None:
        return events_of
    usable = events_of.filter(pl.col(field).is_not_null())
    if usable.height < events_of.height:
        skipped[kind] = skipped.get(kind, 0) + events_of.height - usable.height
    return usable


def _event(
    orders: pl.DataFrame,
    kind: str,
    time_column: str,
    fields: Sequence[str],
    attributes: pl.Expr | None = None,
) -> pl.DataFrame:
    extra = [] if attributes is None else [attributes.alias("attributes")]
    return orders.select(
        (pl.col("order_id") + f":{kind}").alias("event_id"),
        pl.lit(kind).alias("type"),
        pl.col(time_column).alias("event_time"),
        pl.lit(SCHEMA_VERSION, EVENT_COLUMNS["schema_version"]).alias("schema_version"),
        pl.col("order_id"),
        *(pl.col(f) for f in fields),
        *extra,
    )


def _attributes(mapping: Mapping) -> pl.Expr:
    """The JSON object of each order's non-null attributes (``{}`` when none)."""
    members = [
        pl.when(pl.col(name).is_not_null()).then(
            pl.struct(pl.col(name)).struct.json_encode().str.strip_prefix("{").str.strip_suffix("}")
        )
        for name in mapping.attributes
    ]
    if not members:
        return pl.lit("{}")
    inner = pl.concat_str(members, separator=",", ignore_nulls=True)
    return pl.concat_str([pl.lit("{"), inner, pl.lit("}")])
