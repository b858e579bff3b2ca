"""A bulk run's orders as ``/v1/eta/batch`` bodies, built straight from the source:
a Polars frame's columns are encoded to JSON by Polars, a list of mappings by msgspec
in one call a batch, without a Python object per field. Nothing is checked here: the
service checks every order with its own types, and a batch it refuses is split back
into its orders (:func:`orders_in`) and each is checked on its own (:func:`problem`).

What is sent is what :func:`arrive.client.calls.to_request` makes of an order: its
request fields, and its other columns but outcomes and bookkeeping
(:data:`~arrive.client.calls.NOT_ATTRIBUTES`) as ``attributes`` (a struct column or
mapping ``attributes`` is merged in; a column of the same name wins where it is not
null). A null field is
absent, and a NaN attribute is null (absent) too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import msgspec
import polars as pl

from arrive.client.calls import (
    NOT_ATTRIBUTES,
    REQUEST_FIELDS,
    field_and_reason,
    request_fields,
    to_request,
)
from arrive.client.errors import RequestRejected
from arrive.errors import InputFileError
from arrive.schema.eta import EtaRequest

_ATTRIBUTES: Final = "attributes"
_OPEN: Final = b'{"orders":['
_CLOSE: Final = b"]}"
_encoder: Final = msgspec.json.Encoder()
_request: Final = msgspec.json.Decoder(EtaRequest)


class _Body(msgspec.Struct):
    orders: list[msgspec.Raw]


class _Ref(msgspec.Struct):
    order_id: Any = None


class _RefBody(msgspec.Struct):
    orders: list[_Ref]


_body: Final = msgspec.json.Decoder(_Body)
_refs: Final = msgspec.json.Decoder(_RefBody)


@dataclass(frozen=True)
class Batch:
    """One request: the input rows it holds and its body, in the same order."""

    rows: list[int]
    body: bytes


@dataclass(frozen=True)
class Refused:
    """An input row that could not even be encoded, and why."""

    row: int
    order_id: str | None
    error: str


class Orders(Protocol):
    """A bulk run's orders, read once, encoded batch by batch."""

    def __len__(self) -> int: ...

    def order_ids(self) -> list[str | None]:
        """Each row's order id (None when it has none), in input order."""
        ...

    def batches(self, rows: Sequence[int], size: int) -> tuple[list[Batch], list[Refused]]:
        """The bodies of ``rows`` (input rows, in this order), ``size`` orders a body."""
        ...


def body_of(orders: Sequence[bytes]) -> bytes:
    """A batch body of orders already encoded."""
    return _OPEN + b",".join(orders) + _CLOSE


def orders_in(body: bytes) -> list[bytes]:
    """Each order of a batch body, as sent."""
    return [bytes(raw) for raw in _body.decode(body).orders]


def order_ids_in(body: bytes) -> list[str | None]:
    """Each order's id in a batch body (None when absent)."""
    return [_text(ref.order_id) for ref in _refs.decode(body).orders]


def problem(order: bytes) -> RequestRejected | None:
    """Why the service refuses this order by its schema, or None (checked with the
    service's own type, as it does)."""
    try:
        _request.decode(order)
    except msgspec.ValidationError as exc:
        return RequestRejected(*field_and_reason(str(exc)))
    except msgspec.DecodeError as exc:
        return RequestRejected(None, f"not JSON: {exc}")
    return None


class FrameOrders:
    """The rows of a Polars frame, encoded to JSON by Polars."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame, self.attributes = _shaped(frame)
        self.fields = [c for c in self.frame.columns if c not in self.attributes]

    def __len__(self) -> int:
        return len(self.frame)

    def order_ids(self) -> list[str | None]:
        if "order_id" not in self.frame.columns:
            return [None] * len(self.frame)
        return self.frame.get_column("order_id").cast(pl.String).to_list()

    def batches(self, rows: Sequence[int], size: int) -> tuple[list[Batch], list[Refused]]:
        rows = list(rows)
        part = _taken(self.frame, rows)
        try:
            texts = self._json(part)
        except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
            raise InputFileError(f"the orders cannot be encoded as JSON: {exc}") from None
        batches = [
            Batch(
                rows[start : start + size],
                f'{{"orders":[{",".join(texts[start : start + size])}]}}'.encode(),
            )
            for start in range(0, len(rows), size)
        ]
        return batches, []

    def _json(self, part: pl.DataFrame) -> list[str]:
        """Each row as one order's JSON (attribute nulls left out, rows grouped by which
        attributes are null)."""
        nullable = [c for c in self.attributes if part.get_column(c).null_count()]
        if not nullable:
            return part.select(self._encoded(self.attributes)).to_series().to_list()
        key = pl.concat_str([pl.col(c).is_null().cast(pl.UInt8).cast(pl.String) for c in nullable])
        groups = part.with_row_index("_at").with_columns(key.alias("_nulls"))
        encoded = []
        for (nulls,), group in groups.partition_by("_nulls", as_dict=True).items():
            absent = {c for c, null in zip(nullable, str(nulls), strict=True) if null == "1"}
            present = [c for c in self.attributes if c not in absent]
            encoded.append(group.select("_at", self._encoded(present)))
        return pl.concat(encoded).sort("_at").to_series(1).to_list()

    def _encoded(self, attributes: list[str]) -> pl.Expr:
        fields = [pl.col(c) for c in self.fields]
        if attributes:
            fields.append(pl.struct(attributes).alias(_ATTRIBUTES))
        return pl.struct(fields).struct.json_encode().alias("_json")


class MappingOrders:
    """Rows that are mappings, encoded by msgspec a batch at a time."""

    def __init__(self, rows: list[Mapping[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def order_ids(self) -> list[str | None]:
        return [_text(row.get("order_id")) for row in self.rows]

    def batches(self, rows: Sequence[int], size: int) -> tuple[list[Batch], list[Refused]]:
        picked = [self.rows[i] for i in rows]
        shaped = set().union(*picked) <= REQUEST_FIELDS  # sent as they are: null is absent
        batches: list[Batch] = []
        refused: list[Refused] = []
        for start in range(0, len(picked), size):
            chunk = picked[start : start + size]
            numbers = list(rows[start : start + size])
            items = chunk if shaped else [request_fields(row) for row in chunk]
            try:
                batches.append(Batch(numbers, _OPEN[:-1] + _encoder.encode(items) + b"}"))
            except (msgspec.EncodeError, TypeError, ValueError, OverflowError):
                batch, bad = _one_by_one(numbers, chunk, items)
                batches.extend([batch] if batch.rows else [])
                refused.extend(bad)
        return batches, refused


def _one_by_one(
    numbers: list[int], chunk: list[Mapping[str, Any]], items: list[Any]
) -> tuple[Batch, list[Refused]]:
    """A batch msgspec could not encode at once: the rows it can, and why not the others."""
    good: list[tuple[int, bytes]] = []
    refused: list[Refused] = []
    for number, row, item in zip(numbers, chunk, items, strict=True):
        try:
            good.append((number, _encoder.encode(item)))
        except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as exc:
            refused.append(Refused(number, _text(row.get("order_id")), _why(row, exc)))
    return Batch([n for n, _ in good], body_of([b for _, b in good])), refused


def _why(row: Mapping[str, Any], exc: Exception) -> str:
    try:
        to_request(row)
    except RequestRejected as rejected:
        return str(rejected)
    return f"cannot be encoded as JSON: {exc}"


def _shaped(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """``frame`` with the columns sent (an ``attributes`` struct unnested, outcomes and
    all-null columns dropped, NaN attributes null), and its attribute columns."""
    columns = {c: pl.col(c) for c in frame.columns if c not in NOT_ATTRIBUTES}
    nested = frame.schema.get(_ATTRIBUTES)
    if isinstance(nested, pl.Struct | pl.Null):
        del columns[_ATTRIBUTES]
    if isinstance(nested, pl.Struct):
        for field in nested.fields:
            inner = pl.col(_ATTRIBUTES).struct.field(field.name)
            outer = columns.get(field.name)
            columns[field.name] = inner if outer is None else pl.coalesce(outer, inner)
    shaped = frame.select(expr.alias(name) for name, expr in columns.items())
    shaped = shaped.select(c for c in shaped.columns if shaped.schema[c] != pl.Null)
    attributes = [c for c in shaped.columns if c not in REQUEST_FIELDS]
    floats = [c for c in attributes if shaped.schema[c].is_float()]
    return shaped.with_columns(pl.col(c).fill_nan(None) for c in floats), attributes


def _taken(frame: pl.DataFrame, rows: list[int]) -> pl.DataFrame:
    if rows and rows[-1] - rows[0] + 1 == len(rows):  # ascending and contiguous
        return frame.slice(rows[0], len(rows))
    return frame[rows]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
