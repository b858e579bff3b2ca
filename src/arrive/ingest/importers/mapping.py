"""The import mapping: how one CSV dialect becomes canonical orders and events.

A mapping is a TOML file decoded into the frozen structs below; every preset
shipped with Arrive (``presets/*.toml``) is one, and a user's own file works the
same way. Unknown keys are errors naming their key path, and so are values that
decode but make no sense together (a regex without a group, a timezone that does
not exist, both an ``end`` and a ``duration`` target). ``docs/mapping.md``
documents every key with a complete example.
"""

from __future__ import annotations

import codecs
import re
import tomllib
import zoneinfo
from collections.abc import Iterator
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import msgspec
import polars as pl

from arrive.datadir import ORDER_COLUMNS
from arrive.errors import MappingError

_T = TypeVar("_T")

FieldType = Literal["str", "int", "float", "bool"]
DurationUnit = Literal["s", "min", "h"]

#: Seconds per unit of a ``duration`` column.
UNIT_S: Final[dict[str, float]] = {"s": 1.0, "min": 60.0, "h": 3600.0}
#: Lifecycle timestamps a mapping may give, in the order they happen.
LIFECYCLE: Final = ("confirmed_at", "ready_at", "assigned_at", "picked_up_at")
#: Market-snapshot counts a mapping may give.
MARKET: Final = ("couriers_on_shift", "couriers_busy", "outstanding_orders")

_PRESETS: Final = resources.files("arrive.ingest.importers") / "presets"
_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
_AT_PATH: Final = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(?P<key>[^`]+)`$")
# strptime directives that give the year (%D, %F, %x, %c, %s and %+ hold one too).
_YEAR_DIRECTIVE: Final = re.compile(r"(?<!%)%[-_0^#]?[YyGgDFxcs+]")
# A year written literally in a format: matched as text, never parsed as the year.
_LITERAL_YEAR: Final = re.compile(r"(?<![%\d])(?:19|20)\d\d(?!\d)")


class _Spec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of every mapping section: unknown keys are refused."""


class CsvOptions(_Spec, frozen=True):
    """How the file is written.

    Values equal to one of ``missing`` (after stripping, when ``strip`` is on)
    are missing; an empty field is always missing.
    """

    delimiter: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    missing: tuple[str, ...] = ("", "NA", "NaN")
    strip: bool = True
    decimal: Literal[".", ","] = "."


class Column(_Spec, frozen=True):
    """A source column and the transforms applied to its text, in this order:
    ``strip_prefix``, ``pattern`` (the first group is kept), ``map`` (whole-value
    replacement; unmapped values pass through), then the type conversion and
    ``scale`` (numbers only: value × scale, e.g. 0.01 for cents → units)."""

    column: str
    strip_prefix: str | None = None
    pattern: str | None = None
    map: dict[str, str] = msgspec.field(default_factory=dict)
    scale: float | None = None


class Attribute(Column, frozen=True):
    """A source column kept as an extra order attribute, with a type and an
    optional plausible range (inclusive; numbers only)."""

    type: FieldType = "str"
    min: float | None = None
    max: float | None = None


class Duration(Column, frozen=True):
    """A column holding the delivery duration in ``unit``."""

    unit: DurationUnit = "s"


class Timestamp(_Spec, frozen=True):
    """A point in time: either one ``column`` with a strptime ``format`` (``%z``
    accepts ``Z``, ``+05:30`` and ``+0530``; without it the mapping's timezone
    applies), or a ``time_column`` with ``time_format`` plus, optionally, a
    ``date_column`` with ``date_format``. A time without a date takes the
    order's local creation date and rolls over midnight when earlier.

    A date format without a year (``%m-%d %H:%M:%S``, as some exports write
    it) needs the year from elsewhere: a constant ``year``, or a ``year_column``
    holding it (four digits)."""

    column: str | None = None
    format: str | None = None
    date_column: str | None = None
    date_format: str | None = None
    time_column: str | None = None
    time_format: str | None = None
    year: int | None = None
    year_column: str | None = None

    @property
    def time_only(self) -> bool:
        """True when only a time of day is given."""
        return self.column is None and self.date_column is None


class Target(_Spec, frozen=True):
    """The delivery duration: from an ``end`` timestamp or a ``duration`` column
    (exactly one), with the plausible range in seconds."""

    end: Timestamp | None = None
    duration: Duration | None = None
    min_s: float = 0.0
    max_s: float = 86400.0


class Fields(_Spec, frozen=True):
    """Canonical order fields; each is optional. ``order_id`` defaults to the
    line number."""

    order_id: Column | None = None
    store_id: Column | None = None
    market_id: Column | None = None
    store_category: Column | None = None
    courier_id: Column | None = None
    items: Column | None = None
    distinct_items: Column | None = None
    subtotal: Column | None = None


class Timestamps(_Spec, frozen=True):
    """Order creation (required) and the optional lifecycle timestamps.

    ``on_conflict`` says what happens to a lifecycle time that falls before the
    order's creation or after its delivery: ``quarantine`` the row (default), or
    ``drop`` that one time — its event is not written and the summary counts it.

    ``created_at`` and the delivery time must fall on or after ``earliest`` and
    before ``latest`` (UTC midnights; by default two days after the import's
    date), else the row is quarantined as implausible."""

    created_at: Timestamp
    on_conflict: Literal["quarantine", "drop"] = "quarantine"
    earliest: date = date(2000, 1, 1)
    latest: date | None = None
    confirmed_at: Timestamp | None = None
    ready_at: Timestamp | None = None
    assigned_at: Timestamp | None = None
    picked_up_at: Timestamp | None = None


class Point(_Spec, frozen=True):
    """Latitude and longitude columns, in decimal degrees.

    ``missing`` lists this point's ``(lat, lon)`` pairs that mean "unknown"
    (besides :attr:`Coordinates.missing`); a fix within ``missing_within_deg`` of
    any of them, on both axes, is unknown too (GPS noise around (0, 0)). An
    unknown point imports as null, and the import summary counts it."""

    lat: str
    lon: str
    missing: tuple[tuple[float, float], ...] = ()
    missing_within_deg: float = 0.0


class Coordinates(_Spec, frozen=True):
    """Pickup and drop locations, the ``(lat, lon)`` pairs meaning "unknown" for
    both, and the largest plausible pickup–drop distance (a pair that is unknown
    is not checked against it).

    ``pickup_is`` says what the pickup point is: the ``store`` (default), known
    when the order is created, or ``courier_at_accept``, the courier's position
    when accepting the task (parcel and grocery data often have no store). The
    latter is known only from the accept time (``timestamps.assigned_at``), so
    ``order_created`` does not carry it: it becomes the courier's ``courier_ping``
    at acceptance, and stays the order's pickup in ``orders.parquet``."""

    pickup: Point | None = None
    drop: Point | None = None
    missing: tuple[tuple[float, float], ...] = ()
    max_trip_km: float | None = None
    pickup_is: Literal["store", "courier_at_accept"] = "store"


class Market(_Spec, frozen=True):
    """Market supply and demand at order creation (counts)."""

    couriers_on_shift: Column | None = None
    couriers_busy: Column | None = None
    outstanding_orders: Column | None = None


class Mapping(_Spec, frozen=True):
    """A complete import mapping (the root of the TOML file)."""

    name: str
    timestamps: Timestamps
    target: Target
    description: str = ""
    timezone: str = "UTC"
    local_timezone: str | None = None
    csv: CsvOptions = msgspec.field(default_factory=CsvOptions)
    fields: Fields = msgspec.field(default_factory=Fields)
    coordinates: Coordinates = msgspec.field(default_factory=Coordinates)
    market: Market = msgspec.field(default_factory=Market)
    attributes: dict[str, Attribute] = msgspec.field(default_factory=dict)

    def source_columns(self) -> Iterator[tuple[str, str]]:
        """Every ``(key path, CSV column)`` the mapping reads."""
        for path, spec in _columns(self):
            if isinstance(spec, Column):
                yield path, spec.column
            elif isinstance(spec, Point):
                yield f"{path}.lat", spec.lat
                yield f"{path}.lon", spec.lon
            else:
                yield from _timestamp_columns(path, spec)


def preset_names() -> list[str]:
    """Names of the mappings shipped with Arrive."""
    return sorted(
        p.name.removesuffix(".toml") for p in _PRESETS.iterdir() if p.name.endswith(".toml")
    )


def load_mapping(source: str | Path) -> Mapping:
    """The mapping named by ``source``: a preset name or a path to a TOML file.

    A ``source`` containing a path separator or ending in ``.toml`` is a path.

    Raises:
        MappingError: unknown preset, unreadable or malformed file (the message
            names the TOML line or the key path).
    """
    text = str(source)
    if isinstance(source, Path) or "/" in text or "\\" in text or text.endswith(".toml"):
        return _load_file(Path(source))
    preset = _PRESETS / f"{text}.toml"
    if not preset.is_file():
        raise MappingError(f"unknown preset {text!r} (presets: {', '.join(preset_names())})")
    return parse_mapping(preset.read_text(encoding="utf-8"), origin=f"preset {text}")


def parse_mapping(text: str, *, origin: str = "mapping") -> Mapping:
    """Decode and check a mapping from TOML text; ``origin`` prefixes errors.

    Raises:
        MappingError: malformed TOML (names the line), an unknown key or a
            wrong type (names the key path), or inconsistent settings.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{origin}: not valid TOML: {exc}") from exc
    mapping = _convert(data, origin)
    for path, reason in _problems(mapping):
        raise MappingError(f"{origin}: {path}: {reason}")
    return mapping


def _load_file(path: Path) -> Mapping:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MappingError(f"{path}: mapping file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: cannot read the mapping file ({exc})") from exc
    return parse_mapping(text, origin=str(path))


def _convert(data: dict[str, Any], origin: str) -> Mapping:
    # msgspec reports a dict entry as `[...]`; converting attributes one by one names them.
    attributes = data.get("attributes")
    if isinstance(attributes, dict):
        for name, value in attributes.items():
            _decode(value, Attribute, origin, f"attributes.{name}")
    return _decode(data, Mapping, origin, "")


def _decode(value: Any, kind: type[_T], origin: str, prefix: str) -> _T:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise MappingError(f"{origin}: {_describe(str(exc), prefix)}") from exc


def _describe(message: str, prefix: str) -> str:
    match = _AT_PATH.match(message)
    reason = match["reason"] if match else message
    path = prefix + ((match["path"] or "") if match else "")
    unknown = _UNKNOWN.match(reason)
    if unknown:
        path, reason = f"{path}.{unknown['key']}", "unknown key"
    elif reason.startswith("Object missing required field"):
        key = reason.split("`")[1]
        path, reason = f"{path}.{key}", "required key is missing"
    return f"{path.strip('.') or '(top level)'}: {reason}"


def _columns(mapping: Mapping) -> Iterator[tuple[str, Column | Point | Timestamp]]:
    for section in (mapping.fields, mapping.market, mapping.coordinates, mapping.timestamps):
        prefix = type(section).__name__.lower()
        for key in section.__struct_fields__:
            spec = getattr(section, key)
            if isinstance(spec, Column | Point | Timestamp):
                yield f"{prefix}.{key}", spec
    for key in ("end", "duration"):
        spec = getattr(mapping.target, key)
        if spec is not None:
            yield f"target.{key}", spec
    for name, attribute in mapping.attributes.items():
        yield f"attributes.{name}", attribute


def _timestamp_columns(path: str, spec: Timestamp) -> Iterator[tuple[str, str]]:
    for key in ("column", "date_column", "time_column", "year_column"):
        column = getattr(spec, key)
        if column is not None:
            yield f"{path}.{key}", column


def _problems(mapping: Mapping) -> Iterator[tuple[str, str]]:
    """Every inconsistency in ``mapping`` as ``(key path, reason)``."""
    yield from _check_top(mapping)
    for path, spec in _columns(mapping):
        if isinstance(spec, Column):
            yield from _check_column(path, spec)
        elif isinstance(spec, Timestamp):
            yield from _check_timestamp(path, spec)
    yield from _check_target(mapping.target)
    yield from _check_bounds(mapping.timestamps)
    yield from _check_coordinates(mapping.coordinates)
    yield from _check_courier_pickup(mapping)
    yield from _check_attributes(mapping.attributes)


def _check_top(mapping: Mapping) -> Iterator[tuple[str, str]]:
    if not mapping.name.strip():
        yield "name", "must not be empty"
    for key in ("timezone", "local_timezone"):
        zone = getattr(mapping, key)
        if zone is None:
            continue
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            yield key, f"unknown timezone {zone!r} (use an IANA name)"
    csv = mapping.csv
    for key in ("delimiter", "quote"):
        if len(getattr(csv, key)) != 1:
            yield f"csv.{key}", "must be exactly one character"
    try:
        codecs.lookup(csv.encoding)
    except LookupError:
        yield "csv.encoding", f"unknown encoding {csv.encoding!r}"
    if mapping.timestamps.created_at.time_only:
        yield "timestamps.created_at", "needs a date (a column with a date, or a date_column)"


def _check_column(path: str, spec: Column) -> Iterator[tuple[str, str]]:
    if spec.pattern is not None:
        groups = _regex_groups(spec.pattern)
        if isinstance(groups, str):
            yield f"{path}.pattern", groups
        elif groups < 1:
            yield f"{path}.pattern", "needs a capture group: the first group is kept"
    numeric = path.rsplit(".", 1)[-1] in _NUMERIC or getattr(spec, "type", "str") in (
        "int",
        "float",
    )
    if spec.scale is not None and not (numeric or isinstance(spec, Duration)):
        yield f"{path}.scale", "applies to numbers only"


_NUMERIC: Final = frozenset({"items", "distinct_items", "subtotal", *MARKET})


def _regex_groups(pattern: str) -> int | str:
    """How many groups ``pattern`` has, or why the regex engine refuses it."""
    try:
        dtype = pl.Series([""], dtype=pl.String).str.extract_groups(pattern).dtype
    except pl.exceptions.ComputeError as exc:
        return f"not a valid regular expression ({str(exc).splitlines()[-1].strip()})"
    return len(dtype.fields) if isinstance(dtype, pl.Struct) else 0


def _check_timestamp(path: str, spec: Timestamp) -> Iterator[tuple[str, str]]:
    if spec.column is not None:
        others = [k for k in ("date_column", "time_column") if getattr(spec, k) is not None]
        if others:
            yield path, f"give either column or {' and '.join(others)}, not both"
        if spec.format is None:
            yield f"{path}.format", "required with column (a strptime format)"
        else:
            yield from _check_year(path, "format", spec)
        return
    if spec.time_column is None or spec.time_format is None:
        yield path, "needs column + format, or time_column + time_format"
    if (spec.date_column is None) != (spec.date_format is None):
        yield path, "date_column and date_format go together"
    for key in ("date_format", "time_format"):
        if "%z" in (getattr(spec, key) or ""):
            yield f"{path}.{key}", "%z needs a single column with a full timestamp"
    if spec.date_format is not None:
        yield from _check_year(path, "date_format", spec)
    elif spec.year is not None or spec.year_column is not None:
        yield path, "year and year_column go with a date (a time of day has none)"


def _check_year(path: str, key: str, spec: Timestamp) -> Iterator[tuple[str, str]]:
    """A date format must give a year, or the spec must (``year`` / ``year_column``)."""
    fmt: str = getattr(spec, key)
    literal = _LITERAL_YEAR.search(_YEAR_DIRECTIVE.sub("", fmt))
    given = [k for k in ("year", "year_column") if getattr(spec, k) is not None]
    if literal:
        yield (
            f"{path}.{key}",
            (
                f"{fmt!r} writes the year {literal[0]} as text, which is matched, not parsed: "
                f"use %Y in its place (or leave it out and set year = {literal[0]})"
            ),
        )
    elif _YEAR_DIRECTIVE.search(fmt):
        if given:
            yield f"{path}.{given[0]}", f"only for a format without a year, and {fmt!r} has one"
    elif not given:
        yield (
            f"{path}.{key}",
            (
                f"{fmt!r} has no year (%Y or %y): set year = 2024 (the year of every row) "
                "or year_column = the column that holds it"
            ),
        )
    elif len(given) > 1:
        yield path, "give either year or year_column, not both"
    elif spec.year is not None and not 1000 <= spec.year <= 9999:
        yield f"{path}.year", "must have four digits"


def _check_bounds(timestamps: Timestamps) -> Iterator[tuple[str, str]]:
    if timestamps.latest is not None and timestamps.latest <= timestamps.earliest:
        yield "timestamps.latest", "must come after timestamps.earliest"


def _check_target(target: Target) -> Iterator[tuple[str, str]]:
    if (target.end is None) == (target.duration is None):
        yield "target", "give exactly one of end or duration"
    if not 0 <= target.min_s < target.max_s:
        yield "target", "needs 0 <= min_s < max_s"


def _check_coordinates(coordinates: Coordinates) -> Iterator[tuple[str, str]]:
    if coordinates.max_trip_km is not None and coordinates.max_trip_km <= 0:
        yield "coordinates.max_trip_km", "must be positive"
    for end in ("pickup", "drop"):
        point = getattr(coordinates, end)
        if point is not None and not 0 <= point.missing_within_deg < 1:
            yield f"coordinates.{end}.missing_within_deg", "must be at least 0 and below 1"


def _check_courier_pickup(mapping: Mapping) -> Iterator[tuple[str, str]]:
    if mapping.coordinates.pickup_is != "courier_at_accept":
        return
    needs = {
        "coordinates.pickup": mapping.coordinates.pickup,
        "timestamps.assigned_at": mapping.timestamps.assigned_at,
        "fields.courier_id": mapping.fields.courier_id,
    }
    for key, spec in needs.items():
        if spec is None:
            yield (
                "coordinates.pickup_is",
                f"courier_at_accept needs {key}",
            )


def _check_attributes(attributes: dict[str, Attribute]) -> Iterator[tuple[str, str]]:
    for name, spec in attributes.items():
        path = f"attributes.{name}"
        if not _NAME.match(name):
            yield path, "name must be lower_snake_case (letters, digits, _)"
        if name in ORDER_COLUMNS or name in MARKET or name in LIFECYCLE:
            yield path, "name is taken by a canonical column"
        if (spec.min is not None or spec.max is not None) and spec.type not in ("int", "float"):
            yield path, "min and max apply to int and float attributes only"
        if spec.min is not None and spec.max is not None and spec.min > spec.max:
            yield path, "min is above max"
