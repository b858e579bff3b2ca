"""The layout of a data directory, as written by importers and the simulator.

::

    DIR/orders.parquet          one row per order: canonical columns + target
    DIR/events/date=YYYY-MM-DD/part-0.parquet
                                the event log, partitioned by UTC day, time-ordered
    DIR/quarantine.csv          rows refused by an import: line number and reason
    DIR/import_summary.json     counts and provenance (and the marketplace's zone)

A directory is written into a hidden staging folder beside its destination and
moved into place only when complete, so an interrupted or failed run leaves
nothing that looks finished. An import that refuses every row leaves only
``quarantine.csv``: :func:`check_data_dir` tells such a directory, an empty one
and a foreign one apart from a data directory, in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec
import polars as pl

from arrive.errors import ConfigError, DataError, InputFileError
from arrive.schema.events import ORDER_FIELDS
from arrive.schema.frame import EVENT_COLUMNS, UTC_TIME, conform, created_orders

ORDERS_FILE: Final = "orders.parquet"
EVENTS_DIR: Final = "events"
QUARANTINE_FILE: Final = "quarantine.csv"
SUMMARY_FILE: Final = "import_summary.json"

#: Canonical columns of ``orders.parquet``; sources may add attribute columns after them.
#: Between the outcome and ``source_line``: what an OrderCreated event says of its order.
ORDER_COLUMNS: Final[dict[str, pl.DataType]] = {
    "order_id": pl.String(),
    "status": pl.String(),  # "delivered" or "cancelled"
    "created_at": UTC_TIME,
    "delivered_at": UTC_TIME,
    "duration_s": pl.Float64(),  # the target: delivered_at - created_at
    **{name: EVENT_COLUMNS[name] for name in ORDER_FIELDS},
    "source_line": pl.Int64(),  # line of the source file (null for simulated orders)
}


def conform_orders(frame: pl.DataFrame) -> pl.DataFrame:
    """Canonical columns first (added as nulls when absent, cast), extra columns after,
    rows ordered by creation time."""
    missing = [pl.lit(None, t).alias(n) for n, t in ORDER_COLUMNS.items() if n not in frame]
    extra = [c for c in frame.columns if c not in ORDER_COLUMNS]
    return (
        frame.with_columns(missing)
        .select(*(pl.col(n).cast(t) for n, t in ORDER_COLUMNS.items()), *extra)
        .sort("created_at", "order_id", maintain_order=True)
    )


def write_orders(directory: Path, orders: pl.DataFrame) -> None:
    conform_orders(orders).write_parquet(directory / ORDERS_FILE)


def write_events(directory: Path, events: pl.DataFrame) -> None:
    """Write the event log partitioned by UTC day."""
    frame = conform(events)
    days = frame.get_column("event_time").dt.date()
    root = directory / EVENTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    for (day,), part in frame.with_columns(_day=days).group_by("_day", maintain_order=True):
        folder = root / f"date={day}"
        folder.mkdir()
        part.drop("_day").write_parquet(folder / "part-0.parquet")


def write_summary(directory: Path, summary: dict[str, Any]) -> None:
    (directory / SUMMARY_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(summary)))


def check_data_dir(directory: Path) -> None:
    """Check that ``directory`` holds an Arrive data directory with orders and events.

    Raises:
        InputFileError: it is not a directory, or lacks the orders table or the
            event log (the message says what it holds instead).
        DataError: its orders table has no rows.
    """
    directory = Path(directory)
    make = "make one with `arrive import` or `arrive simulate`"
    if not directory.is_dir():
        raise InputFileError(f"{directory}: not a directory ({make})")
    if not (directory / ORDERS_FILE).is_file():
        raise InputFileError(f"{directory}: {_not_data(directory)} ({make})")
    scan_events(directory)  # raises when there is no event log
    if pl.scan_parquet(directory / ORDERS_FILE).select(pl.len()).collect().item() == 0:
        raise DataError(f"{directory}: {ORDERS_FILE} holds no orders ({make})")


def _not_data(directory: Path) -> str:
    """What ``directory`` is, given that it has no orders table."""
    if (directory / QUARANTINE_FILE).is_file():
        return (
            f"the import refused every row, so there are no orders; "
            f"see why in {directory / QUARANTINE_FILE}"
        )
    if not any(directory.iterdir()):
        return "empty, not an Arrive data directory"
    return f"not an Arrive data directory (no {ORDERS_FILE})"


def read_orders(directory: Path) -> pl.DataFrame:
    """The orders table of a data directory."""
    path = Path(directory) / ORDERS_FILE
    if not path.is_file():
        raise InputFileError(
            f"{path}: no orders table here (run `arrive import` or `arrive simulate`)"
        )
    return pl.read_parquet(path)


def scan_events(directory: Path) -> pl.LazyFrame:
    """The event log of a data directory, lazily, in time order within each day."""
    root = Path(directory) / EVENTS_DIR
    if not root.is_dir() or not any(root.glob("*/*.parquet")):
        raise InputFileError(
            f"{root}: no event log here (run `arrive import` or `arrive simulate`)"
        )
    return pl.scan_parquet(root / "*" / "*.parquet", hive_partitioning=False)


def local_timezone(directory: Path) -> str:
    """The marketplace's zone as recorded by the import (UTC when not recorded)."""
    path = Path(directory) / SUMMARY_FILE
    summary = json.loads(path.read_text()) if path.is_file() else {}
    return str(summary.get("local_timezone") or "UTC")


def spine_of(orders: pl.DataFrame, events: pl.LazyFrame) -> pl.DataFrame:
    """Orders as they were known at creation (from OrderCreated), with their outcome."""
    created = created_orders(events).collect()
    attributes = [c for c in orders.columns if c not in ORDER_COLUMNS]
    outcome = orders.filter(
        (pl.col("status") == "delivered") & pl.col("duration_s").is_not_null()
    ).select("order_id", "duration_s", *attributes)
    return created.join(outcome, on="order_id", how="inner").sort("created_at", "order_id")


@contextlib.contextmanager
def staged(destination: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a fresh staging folder; on success it replaces ``destination``.

    Raises:
        ConfigError: ``destination`` exists, is not empty and ``force`` is off.
    """
    destination = Path(destination)
    if destination.exists() and not destination.is_dir():
        raise ConfigError(f"--out {destination}: exists and is not a directory")
    if destination.is_dir() and any(destination.iterdir()) and not force:
        raise ConfigError(
            f"--out {destination}: directory is not empty (use --force to replace it)"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if destination.exists():
        shutil.rmtree(destination)
    os.replace(stage, destination)
