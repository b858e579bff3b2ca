"""Timestamps from CSV text, as Polars expressions: UTC out, whatever went in.

Three shapes are understood (see :class:`~.mapping.Timestamp`): one column with
a full strptime format (aware with ``%z``, else local to the mapping's
timezone), a date column plus a time column, and a time column alone, which is
placed on the order's local creation date and rolled past midnight when it
would otherwise come before the creation time. A date written without its year
gets it from the spec (``year`` or ``year_column``) before parsing, so that
29 February parses in a leap year.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import polars as pl

from arrive.ingest.importers.mapping import Timestamp
from arrive.schema.frame import UTC_TIME

_OFFSET: Final = re.compile(r"(?<!%)%z")
_ONE_DAY: Final = pl.duration(days=1)
# Between the year put in front of a date and the date itself; any literal would do.
_YEAR_JOIN: Final = "|"

#: Cleaned text (stripped, missing spellings as null) of the named CSV column.
TextOf = Callable[[str], pl.Expr]


@dataclass(frozen=True)
class ParsedTime:
    """Expressions for one mapped timestamp.

    Attributes:
        value: the UTC instant, or None for a time-only spec (see :func:`on_creation_date`).
        time_of_day: the parsed local time, for a time-only spec.
        present: every component of the spec has a value.
        partial: some components have a value, others do not.
        unparseable: a component has a value that does not fit its format.
        expected: the format(s), for messages.
    """

    value: pl.Expr | None
    time_of_day: pl.Expr | None
    present: pl.Expr
    partial: pl.Expr
    unparseable: pl.Expr
    expected: str


def parse_time(spec: Timestamp, timezone: str, text_of: TextOf) -> ParsedTime:
    """The expressions reading ``spec`` from the CSV columns; naive times are in ``timezone``."""
    if spec.column is not None and spec.format is not None:
        written = text_of(spec.column)
        text, fmt, expected = _with_year(spec, written, spec.format, text_of)
        return _single(written, text, fmt, expected, timezone)
    if spec.time_column is None or spec.time_format is None:
        raise ValueError("an unchecked Timestamp spec (run it through parse_mapping)")
    if spec.date_column is None or spec.date_format is None:
        return _time_only(text_of(spec.time_column), spec.time_format)
    return _date_and_time(spec, timezone, text_of)


def on_creation_date(time_of_day: pl.Expr, created_at: pl.Expr, timezone: str) -> pl.Expr:
    """The first instant at ``time_of_day`` (local) not before ``created_at`` (UTC), in UTC."""
    created_local = created_at.dt.convert_time_zone(timezone).dt.replace_time_zone(None)
    candidate = created_local.dt.combine(time_of_day)
    rolled = pl.when(candidate < created_local).then(candidate + _ONE_DAY).otherwise(candidate)
    return _localise(rolled, timezone)


def _with_year(
    spec: Timestamp, text: pl.Expr, fmt: str, text_of: TextOf
) -> tuple[pl.Expr, str, str]:
    """``text`` and ``fmt`` with the spec's year put in front, and the format for messages."""
    if spec.year is not None:
        year, expected = pl.lit(f"{spec.year:04d}"), f"{fmt} in {spec.year}"
    elif spec.year_column is not None:
        year, expected = text_of(spec.year_column), f"{fmt}, year from {spec.year_column}"
    else:
        return text, fmt, fmt
    return pl.concat_str([year, pl.lit(_YEAR_JOIN), text]), f"%Y{_YEAR_JOIN}{fmt}", expected


def _single(written: pl.Expr, text: pl.Expr, fmt: str, expected: str, timezone: str) -> ParsedTime:
    """``text`` (``written``, maybe with a year in front) parsed with ``fmt``."""
    if _OFFSET.search(fmt):
        # chrono's %#z also takes a bare "Z", as Python's strptime %z does.
        parsed = text.str.to_datetime(_OFFSET.sub("%#z", fmt), time_unit="us", strict=False)
        value = parsed.dt.convert_time_zone("UTC")
    else:
        naive = text.str.to_datetime(fmt, time_unit="us", strict=False)
        value = _localise(naive, timezone)
    bad = written.is_not_null() & value.is_null()
    return ParsedTime(value, None, written.is_not_null(), pl.lit(False), bad, expected)


def _time_only(text: pl.Expr, fmt: str) -> ParsedTime:
    time = text.str.to_time(fmt, strict=False)
    bad = text.is_not_null() & time.is_null()
    return ParsedTime(None, time, text.is_not_null(), pl.lit(False), bad, fmt)


def _date_and_time(spec: Timestamp, timezone: str, text_of: TextOf) -> ParsedTime:
    date_format, time_format = spec.date_format or "", spec.time_format or ""
    date_text, time_text = text_of(spec.date_column or ""), text_of(spec.time_column or "")
    dated, parse_format, date_format = _with_year(spec, date_text, date_format, text_of)
    date = dated.str.to_date(parse_format, strict=False)
    time = time_text.str.to_time(time_format, strict=False)
    value = _localise(date.dt.combine(time), timezone)
    bad_part = (date_text.is_not_null() & date.is_null()) | (
        time_text.is_not_null() & time.is_null()
    )
    # A wall time skipped by a DST change parses but does not exist.
    bad = bad_part | (date.is_not_null() & time.is_not_null() & value.is_null())
    present = date_text.is_not_null() & time_text.is_not_null()
    partial = date_text.is_not_null() ^ time_text.is_not_null()
    return ParsedTime(value, None, present, partial, bad, f"{date_format} + {time_format}")


def _localise(naive: pl.Expr, timezone: str) -> pl.Expr:
    """Naive local datetimes as UTC; a wall time that does not exist becomes null."""
    local = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC").cast(UTC_TIME)
