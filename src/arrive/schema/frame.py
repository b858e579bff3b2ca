"""The columnar form of canonical events, as stored in an event log.

One wide table: the common fields, then the union of every event type's fields
(null where a type has no such field), and ``attributes`` as a JSON string.
Bulk producers (importers, the simulator) build this frame directly; streaming
code converts to and from :mod:`arrive.schema.events` objects with the two
functions here, which validate like the JSON decoder does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Final, cast

import msgspec
import polars as pl

from arrive.errors import SchemaError
from arrive.schema.codec import schema_error
from arrive.schema.events import EVENT_TYPES, ORDER_FIELDS, SCHEMA_VERSION, AnyEvent, Event

UTC_TIME: Final = pl.Datetime("us", "UTC")

#: Polars type of each kind of event field (counts are ``Int32``, ``attributes`` JSON text).
_DTYPES: Final[dict[type[msgspec.inspect.Type], pl.DataType]] = {
    msgspec.inspect.StrType: pl.String(),
    msgspec.inspect.FloatType: pl.Float64(),
    msgspec.inspect.IntType: pl.Int32(),
    msgspec.inspect.DateTimeType: UTC_TIME,
    msgspec.inspect.DictType: pl.String(),
}


def _dtype(kind: msgspec.inspect.Type) -> pl.DataType:
    if isinstance(kind, msgspec.inspect.UnionType):  # ``X | None``
        (kind,) = (t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
    if isinstance(kind, msgspec.inspect.LiteralType):  # ``schema_version``, a status
        return pl.Int16() if isinstance(kind.values[0], int) else pl.String()
    return _DTYPES[type(kind)]


def _event_columns() -> dict[str, pl.DataType]:
    """The event log's columns, derived from the event classes: the envelope, the ids,
    every other field in the order the event types declare it, ``attributes`` last."""
    dtypes: dict[str, pl.DataType] = {"type": pl.String()}
    for cls in EVENT_TYPES.values():
        for field in cast("msgspec.inspect.StructType", msgspec.inspect.type_info(cls)).fields:
            dtypes.setdefault(field.name, _dtype(field.type))
    envelope = ("event_id", "type", "event_time", "schema_version")
    ids = [name for name in dtypes if name.endswith("_id") and name not in envelope]
    rest = [name for name in dtypes if name not in {*envelope, *ids, "attributes"}]
    return {name: dtypes[name] for name in (*envelope, *ids, *rest, "attributes")}


#: One column per field of any event type (see :func:`_event_columns`).
EVENT_COLUMNS: Final[dict[str, pl.DataType]] = _event_columns()

_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    tag: cls.__struct_fields__ for tag, cls in EVENT_TYPES.items()
}
_COMMON: Final = set(Event.__struct_fields__) | {"type"}
_EMPTY_ATTRIBUTES: Final = "{}"


def created_orders(events: pl.LazyFrame) -> pl.LazyFrame:
    """Every order as known at its creation: ``order_id``, ``created_at`` and
    :data:`ORDER_FIELDS`, in creation order."""
    return (
        events.filter(pl.col("type") == "order_created")
        .select("order_id", *ORDER_FIELDS, created_at=pl.col("event_time"))
        .sort("created_at", "order_id")
    )


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Give ``frame`` exactly the event-log columns, types and order (time, then id).

    Missing columns are added as nulls (``schema_version`` as the current version);
    unknown columns are refused.
    """
    unknown = set(frame.columns) - set(EVENT_COLUMNS)
    if unknown:
        raise SchemaError(sorted(unknown)[0], "not a column of the event log")
    missing = [pl.lit(None, dtype).alias(n) for n, dtype in EVENT_COLUMNS.items() if n not in frame]
    return (
        frame.with_columns(missing)
        .select([pl.col(n).cast(dtype) for n, dtype in EVENT_COLUMNS.items()])
        .with_columns(
            pl.col("attributes").fill_null(_EMPTY_ATTRIBUTES),
            pl.col("schema_version").fill_null(SCHEMA_VERSION),
        )
        .sort("event_time", "event_id", maintain_order=True)
    )


def events_to_frame(events: Iterable[Event]) -> pl.DataFrame:
    """Columnar form of ``events`` (sorted by event time)."""
    rows = []
    for event in events:
        row = msgspec.to_builtins(event, builtin_types=(datetime,))
        if "attributes" in row:
            row["attributes"] = msgspec.json.encode(row["attributes"]).decode()
        rows.append(row)
    if not rows:
        return conform(pl.DataFrame(schema=EVENT_COLUMNS))
    return conform(pl.DataFrame(rows, schema_overrides=EVENT_COLUMNS, infer_schema_length=None))


def frame_to_events(frame: pl.DataFrame) -> Iterator[AnyEvent]:
    """Events from their columnar form, validated; a bad row raises SchemaError naming it."""
    for index, row in enumerate(frame.iter_rows(named=True)):
        try:
            yield _row_to_event(row)
        except SchemaError as exc:
            raise SchemaError(f"row {index}: {exc.field}", exc.reason) from exc


def _row_to_event(row: dict[str, Any]) -> AnyEvent:
    tag = row.get("type")
    fields = _FIELDS.get(tag) if isinstance(tag, str) else None
    if fields is None:
        raise SchemaError("type", f"unknown event type {tag!r}")
    data = {k: row[k] for k in fields if row.get(k) is not None or k in _COMMON}
    data["type"] = tag
    if "attributes" in data:
        data["attributes"] = msgspec.json.decode(data["attributes"])
    try:
        # To the concrete class: msgspec caches a class's type info, not a union's (13x faster).
        return cast("AnyEvent", msgspec.convert(data, EVENT_TYPES[data["type"]]))
    except msgspec.ValidationError as exc:
        raise schema_error(str(exc)) from exc
