"""Typed, checked order columns from a CSV's string columns, vectorised in Polars.

:func:`parse_orders` applies a :class:`~.mapping.Mapping` to the raw rows of a
:class:`~.csvsource.CsvTable`. Every check is an expression that yields a
reason naming the field (``"created_at: missing value"``) or null; a row's
:data:`REASON` is the first reason it earns, core fields first, and a row with
no reason is imported. Duplicate order ids are checked last, among the rows
that passed everything else, so the first such row in the file wins.

The work runs in passes that each materialise their results (cleaned text,
transformed text, numbers, values, then the checks that combine values), so no
expression repeats the work of the one it builds on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Final

import polars as pl
import polars.selectors as cs

from arrive.datadir import ORDER_COLUMNS
from arrive.geo import haversine_km_expr
from arrive.ingest.importers.csvsource import LINE, SOURCE_PREFIX
from arrive.ingest.importers.mapping import (
    LIFECYCLE,
    MARKET,
    UNIT_S,
    Column,
    Duration,
    Mapping,
    Timestamp,
)
from arrive.ingest.importers.timestamps import on_creation_date, parse_time
from arrive.schema.frame import UTC_TIME

#: Column of :func:`parse_orders`'s result: why the row is refused, null when imported.
REASON: Final = "#reason"

_ID_MAX_CHARS: Final = 256
_INT32_MAX: Final = 2**31 - 1
_SANE_S: Final = 1e9  # ~32 years
_NUMERIC: Final = frozenset({"count", "amount", "int", "float"})
_BOOLS: Final = {
    **dict.fromkeys(("true", "t", "yes", "y", "1"), True),
    **dict.fromkeys(("false", "f", "no", "n", "0"), False),
}
# Canonical scalar fields and the conversion each gets (see _value).
_KINDS: Final = {
    "order_id": "id",
    "store_id": "id",
    "market_id": "id",
    "courier_id": "id",
    "store_category": "str",
    "items": "count",
    "distinct_items": "count",
    "subtotal": "amount",
    **dict.fromkeys(MARKET, "count"),
}
# Which refusals are reported first when a row earns several (others: in column order).
_PRIORITY: Final = {"created_at": 0, "delivered_at": 1, "duration_s": 1, "order_id": 2}
_ENDS: Final = ("pickup", "drop")
_AXES: Final = (("lat", 90), ("lon", 180))

Check = tuple[pl.Expr, str]
_Specs = dict[str, tuple[Column, str]]


def parse_orders(rows: pl.DataFrame, mapping: Mapping, *, now: datetime) -> pl.DataFrame:
    """``rows`` plus the typed canonical, lifecycle, market and attribute columns
    and :data:`REASON`.

    Args:
        rows: string columns ``src:<header name>`` and :data:`~.csvsource.LINE`,
            in file order, with every mapped column present.
        now: the import's time; without ``timestamps.latest``, an order created or
            delivered from two days after its date (UTC) on is implausible.
    """
    specs = _column_specs(mapping)
    frame = rows.with_columns(_clean_pass(mapping))
    frame = frame.with_columns(_text_pass(specs))
    frame = frame.with_columns(_number_pass(specs, mapping))
    frame = frame.with_columns(_value_pass(specs, mapping))
    frame = frame.with_columns(_relation_pass(mapping))
    frame = frame.with_columns(_order_pass(mapping, _bounds(mapping, now)))
    reasons = sorted(
        (c for c in frame.columns if c.startswith("?")),
        key=lambda c: _PRIORITY.get(c[1:].split("#", 1)[0], 9),
    )
    frame = frame.with_columns(pl.coalesce(reasons).alias(REASON))
    return frame.with_columns(_duplicates()).drop(cs.starts_with("?", "~"))


def output_columns(mapping: Mapping) -> list[str]:
    """Columns of :func:`parse_orders`'s result that belong in ``orders.parquet``,
    canonical first, then market counts and attributes."""
    market = [name for name in MARKET if getattr(mapping.market, name) is not None]
    return [*ORDER_COLUMNS, *market, *mapping.attributes]


def _column_specs(mapping: Mapping) -> _Specs:
    """Every column-with-transforms the mapping has, by output name, with its kind."""
    specs: _Specs = {}
    for name, kind in _KINDS.items():
        section = mapping.market if name in MARKET else mapping.fields
        spec = getattr(section, name)
        if spec is not None:
            specs[name] = (spec, kind)
    specs |= {name: (spec, spec.type) for name, spec in mapping.attributes.items()}
    if mapping.target.duration is not None:
        specs["duration_s"] = (mapping.target.duration, "float")
    return specs


# -- passes -----------------------------------------------------------------------------------


def _clean_pass(mapping: Mapping) -> Iterator[pl.Expr]:
    """``~c:<column>``: each source column stripped, missing spellings as null."""
    for column in dict.fromkeys(column for _, column in mapping.source_columns()):
        yield _clean(pl.col(SOURCE_PREFIX + column), mapping).alias(f"~c:{column}")


def _text_pass(specs: _Specs) -> Iterator[pl.Expr]:
    """``~t:<name>``: the transformed text; ``~p:<name>``: the pattern did not match."""
    for name, (spec, _) in specs.items():
        text = _c(spec.column)
        if spec.strip_prefix is not None:
            text = text.str.strip_prefix(spec.strip_prefix)
        if spec.pattern is not None:
            text = text.str.extract(spec.pattern, 1)
            yield (_c(spec.column).is_not_null() & text.is_null()).alias(f"~p:{name}")
        if spec.map:
            text = text.replace(spec.map)
        yield text.alias(f"~t:{name}")


def _number_pass(specs: _Specs, mapping: Mapping) -> Iterator[pl.Expr]:
    """``~n:<name>``: finite floats of numeric fields (scaled) and coordinates; the
    transformed text of the others, cleaned again (a transform may yield a missing spelling)."""
    for name, (spec, kind) in specs.items():
        text = _clean(pl.col(f"~t:{name}"), mapping)
        if kind not in _NUMERIC:
            yield text.alias(f"~t:{name}")
            continue
        unit_s = UNIT_S[spec.unit] if isinstance(spec, Duration) else 1.0
        factor = unit_s if spec.scale is None else spec.scale * unit_s
        yield text.alias(f"~t:{name}")
        yield (_number(text, mapping) * factor).alias(f"~n:{name}")
    for end in _ENDS:
        point = getattr(mapping.coordinates, end)
        for axis, _ in _AXES if point is not None else ():
            column = getattr(point, axis)
            yield _number(_c(column), mapping).alias(f"~n:{end}_{axis}")


def _value_pass(specs: _Specs, mapping: Mapping) -> Iterator[pl.Expr]:
    """Typed values and the checks on one field at a time."""
    yield from _timestamp("created_at", mapping.timestamps.created_at, mapping, required=True)
    if mapping.target.end is not None:
        yield from _timestamp("delivered_at", mapping.target.end, mapping, required=True)
    for name in LIFECYCLE:
        yield from _lifecycle(name, mapping)
    for name, (spec, kind) in specs.items():
        yield from _scalar(name, kind, spec, specs)
    yield from _unmapped(specs)
    for end in _ENDS:
        yield from _point(end, mapping)
    yield pl.lit("delivered").alias("status")
    yield pl.col(LINE).alias("source_line")


def _relation_pass(mapping: Mapping) -> Iterator[pl.Expr]:
    """What needs ``created_at`` or two fields: time-only timestamps, the end, the trip."""
    created = pl.col("created_at")
    for name in (*LIFECYCLE, "delivered_at"):
        spec = mapping.target.end if name == "delivered_at" else getattr(mapping.timestamps, name)
        if spec is not None and spec.time_only:
            yield on_creation_date(pl.col(f"~{name}"), created, mapping.timezone).alias(name)
    if mapping.target.duration is not None:
        seconds = pl.col("duration_s")
        # An absurd duration is refused anyway; kept out of datetime arithmetic, it cannot overflow.
        micros = pl.when(seconds.abs() < _SANE_S).then((seconds * 1e6).round().cast(pl.Int64))
        yield (created + pl.duration(microseconds=micros)).alias("delivered_at")
    yield from _trip(mapping)


def _bounds(mapping: Mapping, now: datetime) -> tuple[date, date]:
    """The plausible range of order times: ``[earliest, latest)``, UTC midnights."""
    earliest, latest = mapping.timestamps.earliest, mapping.timestamps.latest
    return earliest, latest or now.astimezone(UTC).date() + timedelta(days=2)


def _order_pass(mapping: Mapping, bounds: tuple[date, date]) -> Iterator[pl.Expr]:
    """Checks over the resolved timestamps and the target."""
    created, delivered = pl.col("created_at"), pl.col("delivered_at")
    yield _plausible("created_at", bounds)
    yield _plausible("delivered_at", bounds)
    seconds = pl.col("duration_s")
    if mapping.target.end is not None:
        seconds = (delivered - created).dt.total_microseconds() / 1e6
        yield seconds.alias("duration_s")
        yield _reason("delivered_at#order", [(delivered < created, "before created_at")])
    low, high = mapping.target.min_s, mapping.target.max_s
    plausible = [
        (seconds < low, f"below the plausible minimum of {low:g} s"),
        (seconds > high, f"above the plausible maximum of {high:g} s"),
    ]
    yield _reason("duration_s#range", plausible)
    for name in LIFECYCLE:
        at = pl.col(name)
        order = [(at < created, "before created_at"), (at > delivered, "after delivered_at")]
        if mapping.timestamps.on_conflict == "drop":
            yield pl.when((at < created) | (at > delivered)).then(None).otherwise(at).alias(name)
        else:
            yield _reason(f"{name}#order", order)


def _plausible(name: str, bounds: tuple[date, date]) -> pl.Expr:
    low, high = (datetime(d.year, d.month, d.day, tzinfo=UTC) for d in bounds)
    at = pl.col(name)
    return _reason(
        f"{name}#range",
        [
            (at < low, f"implausible, before {low.date()} (timestamps.earliest)"),
            (at >= high, f"implausible, on or after {high.date()} (timestamps.latest)"),
        ],
    )


def _duplicates() -> pl.Expr:
    ok = pl.col(REASON).is_null()
    repeat = ok & (pl.int_range(pl.len()).over("order_id", ok) > 0)
    message = pl.lit("order_id: duplicate of an earlier row")
    return pl.when(repeat).then(message).otherwise(pl.col(REASON)).alias(REASON)


# -- scalar fields ----------------------------------------------------------------------------


def _c(column: str) -> pl.Expr:
    return pl.col(f"~c:{column}")


def _clean(text: pl.Expr, mapping: Mapping) -> pl.Expr:
    """``text`` stripped (when the CSV options say so), missing spellings as null."""
    if mapping.csv.strip:
        text = text.str.strip_chars()
    return text.replace(list(dict.fromkeys([*mapping.csv.missing, ""])), None)


def _number(text: pl.Expr, mapping: Mapping) -> pl.Expr:
    """``text`` as a finite float (null when it is not one)."""
    if mapping.csv.decimal == ",":
        text = text.str.replace_all(",", ".", literal=True)
    number = text.cast(pl.Float64, strict=False)
    return number.replace([float("inf"), float("-inf")], None).fill_nan(None)


def _scalar(name: str, kind: str, spec: Column, specs: _Specs) -> Iterator[pl.Expr]:
    text = pl.col(f"~t:{name}")
    checks: list[Check] = []
    if spec.pattern is not None:
        checks.append((pl.col(f"~p:{name}"), "does not match the pattern"))
    if name in ("order_id", "duration_s"):
        checks.append((text.is_null(), "missing value"))
    value, more = _value(name, kind, text)
    low, high = getattr(spec, "min", None), getattr(spec, "max", None)
    if low is not None:
        more.append((value < low, f"below the minimum {low:g}"))
    if high is not None:
        more.append((value > high, f"above the maximum {high:g}"))
    yield value.alias(name)
    yield _reason(name, [*checks, *more])


def _unmapped(specs: _Specs) -> Iterator[pl.Expr]:
    """Canonical fields the mapping leaves out: null, except order_id (the line number)."""
    for name in _KINDS:
        if name == "order_id" and name not in specs:
            yield pl.col(LINE).cast(pl.String).alias(name)
        elif name not in specs:
            yield pl.lit(None, ORDER_COLUMNS.get(name, pl.Int32())).alias(name)


def _value(name: str, kind: str, text: pl.Expr) -> tuple[pl.Expr, list[Check]]:
    """The field as ``kind`` (id, str, bool, float, amount, int, count), with its checks."""
    if kind == "id":
        return text, [(text.str.len_chars() > _ID_MAX_CHARS, "longer than 256 characters")]
    if kind == "str":
        return text, []
    present = text.is_not_null()
    if kind == "bool":
        value = text.str.to_lowercase().replace_strict(
            _BOOLS, default=None, return_dtype=pl.Boolean
        )
        return value, [(present & value.is_null(), "not a boolean (true/false, yes/no, 1/0)")]
    number = pl.col(f"~n:{name}")
    if kind in ("float", "amount"):
        checks = [(present & number.is_null(), "not a number"), (number < 0, "negative")]
        return number, checks if kind == "amount" or name == "duration_s" else checks[:1]
    whole = pl.when(number == number.round()).then(number).cast(pl.Int64, strict=False)
    checks = [(present & whole.is_null(), "not a whole number")]
    if kind == "int":
        return whole, checks
    checks += [(whole < 0, "negative"), (whole > _INT32_MAX, "too large")]
    return whole.cast(pl.Int32, strict=False), checks


# -- timestamps -------------------------------------------------------------------------------


def _lifecycle(name: str, mapping: Mapping) -> Iterator[pl.Expr]:
    spec: Timestamp | None = getattr(mapping.timestamps, name)
    if spec is None:
        yield pl.lit(None, UTC_TIME).alias(name)
    else:
        yield from _timestamp(name, spec, mapping)


def _timestamp(
    name: str, spec: Timestamp, mapping: Mapping, *, required: bool = False
) -> Iterator[pl.Expr]:
    """A timestamp's UTC value (or ``~name``, the local time of day of a time-only
    spec, resolved in the relation pass) and its checks."""
    parsed = parse_time(spec, mapping.timezone, _c)
    if parsed.value is not None:
        yield parsed.value.alias(name)
    elif parsed.time_of_day is not None:
        yield parsed.time_of_day.alias(f"~{name}")
    checks = [(parsed.unparseable, f"unparseable value (expected {parsed.expected})")]
    if required:
        checks.append((~parsed.present, "missing value"))
    else:
        checks.append((parsed.partial, "date or time missing"))
    yield _reason(name, checks)


# -- coordinates ------------------------------------------------------------------------------


def _point(end: str, mapping: Mapping) -> Iterator[pl.Expr]:
    """``<end>_lat`` and ``<end>_lon`` with their checks; a pair listed as missing is null."""
    point = getattr(mapping.coordinates, end)
    if point is None:
        yield from (pl.lit(None, pl.Float64).alias(f"{end}_{axis}") for axis, _ in _AXES)
        yield pl.lit(False).alias(unknown_column(end))
        return
    numbers = [pl.col(f"~n:{end}_{axis}") for axis, _ in _AXES]
    pairs = (*mapping.coordinates.missing, *point.missing)
    unknown = _unknown_pair(numbers, pairs, point.missing_within_deg)
    yield unknown.alias(unknown_column(end))
    values = [pl.when(~unknown).then(number) for number in numbers]
    for i, (axis, limit) in enumerate(_AXES):
        partner = f"{end}_{_AXES[1 - i][0]}"
        text = _c(getattr(point, axis))
        checks = [
            (text.is_not_null() & numbers[i].is_null(), "not a number"),
            (values[i].abs() > limit, f"outside -{limit}..{limit}"),
            (values[i].is_null() & values[1 - i].is_not_null(), f"missing while {partner} is set"),
        ]
        yield values[i].alias(f"{end}_{axis}")
        yield _reason(f"{end}_{axis}", checks)


def unknown_column(end: str) -> str:
    """Column of :func:`parse_orders`'s result: ``end``'s point was declared unknown."""
    return f"#unknown:{end}"


def _unknown_pair(
    numbers: list[pl.Expr], pairs: Sequence[tuple[float, float]], within: float
) -> pl.Expr:
    lat, lon = numbers
    if not pairs:
        return pl.lit(False)
    near = [((lat - a).abs() <= within) & ((lon - b).abs() <= within) for a, b in pairs]
    return pl.any_horizontal(near).fill_null(False)


def _trip(mapping: Mapping) -> Iterator[pl.Expr]:
    limit = mapping.coordinates.max_trip_km
    if limit is None:
        return
    pickup, drop = (pl.col(f"{end}_lat") for end in _ENDS)
    km = haversine_km_expr(pickup, pl.col("pickup_lon"), drop, pl.col("drop_lon"))
    yield _reason("drop#trip", [(km > limit, f"more than {limit:g} km from pickup")])


def _reason(field: str, checks: Sequence[Check]) -> pl.Expr:
    """The first failing check's message as ``"<field>: <why>"``, null when all pass;
    named ``?<field>`` (a ``#suffix`` after the field keeps names unique)."""
    label = field.split("#", 1)[0]
    if not checks:
        return pl.lit(None, pl.String).alias(f"?{field}")
    whens = [pl.when(cond).then(pl.lit(f"{label}: {why}")) for cond, why in checks]
    return pl.coalesce(whens).alias(f"?{field}")
