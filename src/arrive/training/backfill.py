"""Feature backfills: offline features of a date range, written partitioned by day.

A backfill computes, for every delivered order created on a local day from ``first`` to
``last`` (the marketplace's days), the point-in-time features training uses, and writes
one Parquet file per day::

    OUT/date=YYYY-MM-DD/part-0.parquet    order_id, created_at, one column per feature
    OUT/_manifest.json                    rows and feature definitions hash of every day

It is what lets a retraining use a changed feature definition on old data: rerun the
range, and every day's file is replaced (written beside it, then renamed over it, so a
reader never sees half a day). Orders and events after ``last`` are left out of the
build (the features are point-in-time, so the values of the range do not change), and
the whole history before ``first`` is kept: a feature may look back as far as it likes.
With a Dask client the feature groups are computed on its cluster, with the same values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import polars as pl

from arrive.errors import ConfigError, DataError
from arrive.features import BuildContext, build_features
from arrive.training.dataset import build_context

MANIFEST: Final = "_manifest.json"


@dataclass(frozen=True, slots=True)
class Backfill:
    """What a backfill wrote: rows per day, and the features and their definitions."""

    out: Path
    days: dict[str, int]
    features: list[str]
    definitions_hash: str
    left_out: dict[str, str]

    @property
    def rows(self) -> int:
        return sum(self.days.values())


def backfill(
    data_dir: Path,
    out: Path,
    first: date,
    last: date,
    client: Any = None,
    on_day: Callable[[int, int], None] | None = None,
) -> Backfill:
    """Compute and write the features of the orders created from ``first`` to ``last``
    (local days, both included).

    Raises:
        ConfigError: ``last`` is before ``first``.
        DataError: no delivered order in the range.
    """
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    full = build_context(Path(data_dir))
    zone = ZoneInfo(full.local_timezone)
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    ctx = _until(full, end)
    local_day = pl.col("created_at").dt.convert_time_zone(full.local_timezone).dt.date()
    wanted = ctx.orders.filter(pl.col("created_at") >= start).height
    if wanted == 0:
        raise DataError(f"{data_dir}: no delivered order created from {first} to {last}")
    features = build_features(ctx, client)
    frame = (
        ctx.orders.select("order_id", "created_at", day=local_day)
        .join(features.frame, on="order_id", how="left")
        .filter(pl.col("created_at") >= start)
    )
    days = _write_days(frame, Path(out), on_day)
    result = Backfill(Path(out), days, features.names, features.definitions_hash, features.left_out)
    _write_manifest(result)
    return result


def read_backfill(out: Path) -> pl.DataFrame:
    """Every day a backfill wrote under ``out``, in creation order."""
    return (
        pl.scan_parquet(Path(out) / "date=*" / "*.parquet", hive_partitioning=False)
        .sort("created_at", "order_id")
        .collect()
    )


def _until(ctx: BuildContext, end: datetime) -> BuildContext:
    """``ctx`` without the orders created and the events that happened from ``end`` on."""
    orders = ctx.orders.drop("_row").filter(pl.col("created_at") < end)
    events = ctx.events.filter(pl.col("event_time") < end)
    return BuildContext(orders, events, ctx.local_timezone, ctx.attributes)


def _write_days(
    frame: pl.DataFrame, out: Path, on_day: Callable[[int, int], None] | None
) -> dict[str, int]:
    parts = frame.partition_by("day", as_dict=True, maintain_order=True)
    written: dict[str, int] = {}
    for done, ((day,), part) in enumerate(sorted(parts.items(), key=lambda kv: kv[0]), 1):
        folder = out / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".part-0.parquet.tmp"
        part.drop("day").sort("created_at", "order_id").write_parquet(tmp)
        os.replace(tmp, folder / "part-0.parquet")
        written[str(day)] = part.height
        if on_day is not None:
            on_day(done, len(parts))
    return written


def _write_manifest(result: Backfill) -> None:
    """The manifest: this run's features, and per day (earlier runs' days kept) its rows
    and the definitions it was computed with, so days of older definitions show."""
    path = result.out / MANIFEST
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    days = {
        d: {"rows": n, "definitions_hash": result.definitions_hash} for d, n in result.days.items()
    }
    manifest = {
        "definitions_hash": result.definitions_hash,
        "features": result.features,
        "left_out": result.left_out,
        "days": dict(sorted({**earlier.get("days", {}), **days}.items())),
    }
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp, path)
