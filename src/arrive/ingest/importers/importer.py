"""Importing a delivery CSV: a mapping and a file in; orders, events, quarantine and
a summary out.

Every record of the file ends up either imported or quarantined with its line
and a reason, so ``rows_in == rows_imported + rows_quarantined`` always holds
(blank lines hold no record and are counted apart). Whole-file problems raise:
a missing, unreadable or corrupt file (:class:`~arrive.errors.InputFileError`)
and a header without a mapped column (:class:`~arrive.errors.MappingError`).
An import that keeps no row is a failure too (:func:`nothing_imported`): only
its quarantine is written, so the directory never looks like usable data.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

import polars as pl

from arrive import __version__, datadir
from arrive.clock import Clock, SystemClock
from arrive.errors import DataError, InternalError
from arrive.ingest.importers.csvsource import LINE, SOURCE_PREFIX, CsvTable, read_csv
from arrive.ingest.importers.eventlog import order_events
from arrive.ingest.importers.mapping import Mapping
from arrive.ingest.importers.transform import (
    REASON,
    output_columns,
    parse_orders,
    unknown_column,
)

#: Called with (stage, done, total); stages are "read" (bytes), "check", "events", "write".
ImportProgress = Callable[[str, int, int], None]

_QUARANTINE_HEAD: Final = ("line", "reason")
_TOP_REASONS: Final = 3


class QuarantinedRow(NamedTuple):
    """A refused record: where it starts, why, and its fields as written."""

    line: int
    reason: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class ImportResult:
    """What an import produced, ready to be written by :func:`write_import`.

    Attributes:
        orders: one row per imported order, as :func:`arrive.datadir.conform_orders` shapes it.
        events: the event log of those orders (see :mod:`.eventlog`), time-ordered.
        header: the CSV header, for the quarantine file.
        quarantine: refused records, by line.
        summary: counts and provenance (the content of ``import_summary.json``).
    """

    orders: pl.DataFrame
    events: pl.DataFrame
    header: tuple[str, ...]
    quarantine: list[QuarantinedRow]
    summary: dict[str, Any]


def import_csv(
    path: Path,
    mapping: Mapping,
    *,
    source: str | None = None,
    clock: Clock | None = None,
    on_progress: ImportProgress | None = None,
) -> ImportResult:
    """Import the CSV at ``path`` through ``mapping``.

    Args:
        source: how the mapping was named (preset or file), recorded in the summary.
        clock: stamps ``imported_at`` (the system clock by default).
        on_progress: told how far each stage got.

    Raises:
        InputFileError: the file is missing, unreadable, corrupt, or has no header.
        MappingError: the header lacks a mapped column, or has it twice.
    """
    report = on_progress or _ignore
    now = (clock or SystemClock()).now()
    table = read_csv(
        path,
        mapping.csv,
        wanted=list(mapping.source_columns()),
        on_progress=lambda done, total: report("read", done, total),
    )
    report("check", 0, 1)
    parsed = parse_orders(table.rows, mapping, now=now)
    good = parsed.filter(pl.col(REASON).is_null())
    orders = datadir.conform_orders(good.select(output_columns(mapping)))
    report("check", 1, 1)
    events, skipped = order_events(good, mapping)
    report("events", 1, 1)
    quarantine = _quarantine(parsed.filter(pl.col(REASON).is_not_null()), table)
    summary = _summary(path, mapping, table, orders, events, quarantine)
    summary |= {"source": source or mapping.name, "events_not_written": skipped}
    summary["pickup_is"] = mapping.coordinates.pickup_is
    summary["coordinates_unknown"] = {
        end: good.get_column(unknown_column(end)).sum() for end in ("pickup", "drop")
    }
    summary["imported_at"] = now.isoformat()
    return ImportResult(orders, events, table.header, quarantine, summary)


def write_import(
    directory: Path, result: ImportResult, on_progress: ImportProgress | None = None
) -> None:
    """Write ``result`` into ``directory`` in the :mod:`arrive.datadir` layout.

    Use it on the folder yielded by :func:`arrive.datadir.staged`, so that a
    failure leaves nothing that looks complete. When no order was imported only
    ``quarantine.csv`` is written (see :func:`nothing_imported`).
    """
    report = on_progress or _ignore
    steps: list[Callable[[], None]] = [
        lambda: write_quarantine(directory / datadir.QUARANTINE_FILE, result),
    ]
    if result.orders.height > 0:
        steps = [
            lambda: datadir.write_orders(directory, result.orders),
            lambda: datadir.write_events(directory, result.events),
            lambda: write_quarantine(directory / datadir.QUARANTINE_FILE, result),
            lambda: datadir.write_summary(directory, result.summary),
        ]
    for done, step in enumerate(steps):
        report("write", done, len(steps))
        step()
    report("write", len(steps), len(steps))


def import_into(directory: Path, path: Path, mapping: Mapping) -> Path:
    """Import the CSV at ``path`` through ``mapping`` into the new data directory
    ``directory`` (staged: a failure leaves nothing that looks complete); returns it.

    Raises:
        DataError: no row was imported (``directory`` then holds only the quarantine).
    """
    with datadir.staged(directory) as stage:
        result = import_csv(path, mapping)
        write_import(stage, result)
    nothing_imported(result, directory)
    return Path(directory)


def nothing_imported(result: ImportResult, directory: Path) -> None:
    """Refuse an import that kept no row, naming its main reasons with their counts.

    Raises:
        DataError: ``result`` has no order.
    """
    if result.orders.height > 0:
        return
    summary = result.summary
    if summary["rows_in"] == 0:
        raise DataError(f"nothing imported: {summary['input']['path']} has no rows")
    reasons = list(summary["quarantine_by_reason"].items())
    top = "; ".join(f"{reason} ({count:,} rows)" for reason, count in reasons[:_TOP_REASONS])
    more = f"; {len(reasons) - _TOP_REASONS} more reasons" if len(reasons) > _TOP_REASONS else ""
    raise DataError(
        f"nothing imported: all {summary['rows_in']:,} rows quarantined ({top}{more}); "
        f"see {Path(directory) / datadir.QUARANTINE_FILE}"
    )


def write_quarantine(path: Path, result: ImportResult) -> None:
    """The refused records as CSV: ``line``, ``reason``, then the fields as written
    (a record with the wrong field count keeps its own count)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((*_QUARANTINE_HEAD, *result.header))
        writer.writerows((row.line, row.reason, *row.fields) for row in result.quarantine)


def _ignore(stage: str, done: int, total: int) -> None:
    """The default progress hook: nobody is watching."""


def _quarantine(refused: pl.DataFrame, table: CsvTable) -> list[QuarantinedRow]:
    raw = [c for c in table.rows.columns if c.startswith(SOURCE_PREFIX)]
    rows = [
        QuarantinedRow(line, reason, tuple(fields))
        for line, reason, *fields in refused.select(LINE, REASON, *raw).iter_rows()
    ]
    width = len(table.header)
    rows += [
        QuarantinedRow(
            r.line, f"fields: {len(r.fields)} found, the header has {width}", tuple(r.fields)
        )
        for r in table.ragged
    ]
    return sorted(rows, key=lambda row: row.line)


def _summary(
    path: Path,
    mapping: Mapping,
    table: CsvTable,
    orders: pl.DataFrame,
    events: pl.DataFrame,
    quarantine: list[QuarantinedRow],
) -> dict[str, Any]:
    if table.records != orders.height + len(quarantine):
        raise InternalError(
            f"import lost rows: {table.records} in, {orders.height} imported, "
            f"{len(quarantine)} quarantined"
        )
    created = orders.get_column("created_at")
    return {
        "arrive_version": __version__,
        "mapping": mapping.name,
        "local_timezone": mapping.local_timezone or mapping.timezone,
        "input": {"path": str(Path(path).resolve()), "sha256": _sha256(path)},
        "rows_in": table.records,
        "rows_imported": orders.height,
        "rows_quarantined": len(quarantine),
        "blank_lines": table.blank_lines,
        "quarantine_by_reason": dict(Counter(row.reason for row in quarantine).most_common()),
        "created_at_min": _iso(created.min()),
        "created_at_max": _iso(created.max()),
        "events": dict(sorted(events.get_column("type").value_counts().iter_rows())),
    }


def _sha256(path: Path) -> str:
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None
