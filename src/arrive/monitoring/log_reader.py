"""Reading the prediction log's published files, as rows the outcome join takes.

Only published files are read (:func:`arrive.monitoring.prediction_log.published`):
the service renames a file into place once it is complete, so a file is read once,
whole. A file that does not read back as a prediction log (cut short, damaged, or
another schema) is skipped and counted by reason, never retried, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from arrive.monitoring.join import PREDICTIONS
from arrive.monitoring.prediction_log import OPTIONAL, SCHEMA, published

logger = logging.getLogger(__name__)

HISTORY_FEATURE: Final = "store_delivery_count_28d"
"""The served feature the store-history segment is bucketed from."""
HISTORY_BUCKETS: Final = ((0, "0"), (9, "1-9"), (99, "10-99"))
"""Upper bounds (inclusive) of the store-history buckets; above the last: ``100+``."""
SKIP_REASONS: Final = ("truncated", "corrupt", "schema")


class SkippedFile(Exception):
    """A log file that cannot be used; ``reason`` is one of :data:`SKIP_REASONS`."""

    def __init__(self, path: Path, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{path.name}: {reason} ({detail})")


def unread(directory: Path, consumed: Collection[str]) -> list[Path]:
    """Published files of ``directory`` whose names are not in ``consumed``, oldest first."""
    return [path for path in published(directory) if path.name not in consumed]


def read_file(path: Path) -> pl.DataFrame:
    """The predictions of one log file as :data:`arrive.monitoring.join.PREDICTIONS` rows.

    Raises:
        SkippedFile: the file is cut short, damaged or not a prediction log.
    """
    return prepare(read_log(path))


def read_log(path: Path) -> pl.DataFrame:
    """The rows of one log file as logged (the columns of
    :data:`arrive.monitoring.prediction_log.SCHEMA`, ``features`` JSON included).

    Raises:
        SkippedFile: the file is cut short, damaged or not a prediction log.
    """
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        reason = "truncated" if _cut_short(path) else "corrupt"
        raise SkippedFile(path, reason, str(exc).splitlines()[0]) from exc
    missing = [name for name in SCHEMA.names if name not in table.column_names]
    if set(missing) - OPTIONAL:
        raise SkippedFile(path, "schema", f"missing columns {', '.join(missing)}")
    for name in missing:  # a file written before the column existed
        table = table.append_column(
            SCHEMA.field(name), pa.nulls(len(table), SCHEMA.field(name).type)
        )
    frame = pl.from_arrow(table.select(SCHEMA.names))
    if not isinstance(frame, pl.DataFrame):  # pragma: no cover - a table gives a frame
        raise SkippedFile(path, "schema", "not a table")
    return frame


def prepare(frame: pl.DataFrame) -> pl.DataFrame:
    """Log rows (the log's columns) as join rows: ``version`` is the model version or
    ``heuristic``, ``fallback`` the reason or ``none``, ``store_history`` a bucket of
    the served store-history count (``unknown`` without features)."""
    count = pl.lit(_history_counts(frame.get_column("features")))
    bucket: Any = pl.when(count.is_null()).then(pl.lit("unknown"))
    for upper, label in HISTORY_BUCKETS:
        bucket = bucket.when(count <= upper).then(pl.lit(label))
    return frame.select(
        "request_id",
        "order_id",
        pl.col("time").cast(PREDICTIONS["time"]),
        "variant",
        pl.col("model_version").fill_null("heuristic").alias("version"),
        "p50_s",
        "p90_s",
        pl.col("fallback").fill_null("none"),
        bucket.otherwise(pl.lit("100+")).alias("store_history"),
        pl.col("latency_s").cast(pl.Float64),
        "error",
    )


def _history_counts(features: pl.Series) -> pl.Series:
    """The served store-history count of each row: the JSON parsed once, in Polars, for
    that one field (a third of the cost of a JSON path match); a log whose value has
    another type falls back to the path match."""
    try:
        decoded = features.str.json_decode(pl.Struct({HISTORY_FEATURE: pl.Float64()}))
        return decoded.struct.field(HISTORY_FEATURE)
    except pl.exceptions.PolarsError:
        return features.str.json_path_match(f"$.{HISTORY_FEATURE}").cast(pl.Float64)


def _cut_short(path: Path) -> bool:
    """True when ``path`` lacks the Parquet footer's magic bytes."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, 2)
            file.seek(max(size - 4, 0))
            return size < 12 or file.read(4) != b"PAR1"
    except OSError:
        return False
