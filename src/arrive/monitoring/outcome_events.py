"""Raw event messages as the frames the outcome join takes, decoded by Polars.

The monitor needs five fields of three event types (``order_created``,
``delivered``, ``cancelled``), so a batch of messages is parsed at once as JSON
lines by Polars instead of one event object at a time (about ten times faster;
the ingest pipeline, not the monitor, validates events in full). A batch Polars
cannot parse (a payload that is not JSON) is decoded message by message with the
canonical codec; messages without a type, an event time, or (for those three
types) an order id are refused and counted.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import msgspec
import polars as pl

from arrive.errors import SchemaError
from arrive.monitoring.join import CREATED, TIME
from arrive.schema.codec import decode_event

WIRE: Final = pl.Schema(
    {
        "type": pl.String(),
        "event_time": pl.String(),
        "order_id": pl.String(),
        "store_id": pl.String(),
        "market_id": pl.String(),
        "store_category": pl.String(),
    }
)
OUTCOME_TYPES: Final = ("delivered", "cancelled")
OUTCOMES: Final = pl.Schema({"order_id": pl.String(), "kind": pl.String(), "outcome_time": TIME})


@dataclass(frozen=True)
class Decoded:
    """One batch of messages, decoded.

    Attributes:
        outcomes: ``order_id``, ``kind`` (delivered or cancelled), ``outcome_time``.
        created: order attributes (:data:`arrive.monitoring.join.CREATED`).
        latest: the latest event time of the batch (any type), None when empty.
        refused: messages that are not events.
    """

    outcomes: pl.DataFrame
    created: pl.DataFrame
    latest: datetime | None
    refused: int


def decode(payloads: Sequence[bytes]) -> Decoded:
    """The outcome and order-created rows of ``payloads`` (one canonical JSON event each)."""
    frame = _parsed(payloads)
    if frame is None:
        frame = pl.DataFrame([_row(p) for p in payloads], schema=WIRE, orient="row")
    frame = frame.with_columns(
        pl.col("event_time").str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
    )
    needs_order = pl.col("type").is_in([*OUTCOME_TYPES, "order_created"])
    valid = (
        pl.col("type").is_not_null()
        & pl.col("event_time").is_not_null()
        & (~needs_order | pl.col("order_id").is_not_null())
    )
    good = frame.filter(valid)
    latest = good.get_column("event_time").max()
    outcomes = good.filter(pl.col("type").is_in(OUTCOME_TYPES)).select(
        "order_id", pl.col("type").alias("kind"), pl.col("event_time").alias("outcome_time")
    )
    created = good.filter(pl.col("type") == "order_created").select(
        "order_id", pl.col("event_time").alias("created_at"), *CREATED.names()[2:]
    )
    return Decoded(
        outcomes=outcomes,
        created=created,
        latest=latest if isinstance(latest, datetime) else None,
        refused=frame.height - good.height,
    )


def _parsed(payloads: Sequence[bytes]) -> pl.DataFrame | None:
    """The batch parsed as JSON lines, or None when Polars cannot (one row per payload)."""
    lines = b"\n".join(payloads)
    # one line per payload: none empty, none spanning lines (counted in C, not per payload)
    if not payloads or lines.count(b"\n") != len(payloads) - 1 or not all(payloads):
        return None
    try:
        frame = pl.read_ndjson(io.BytesIO(lines), schema=WIRE)
    except pl.exceptions.PolarsError:
        return None
    return frame if frame.height == len(payloads) else None


def _row(payload: bytes) -> tuple[str | None, ...]:
    """One message's fields by the canonical codec; all null when it is not an event."""
    try:
        event = decode_event(payload)
    except (SchemaError, msgspec.DecodeError):
        return (None,) * len(WIRE)
    values = {name: getattr(event, name, None) for name in WIRE.names()}
    values["type"] = event.__struct_config__.tag
    values["event_time"] = event.event_time.isoformat()
    return tuple(None if v is None else str(v) for v in values.values())
