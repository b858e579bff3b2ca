"""The prediction log: every answer, buffered in memory, written to Parquet in the background.

:meth:`PredictionLog.append` only adds to a bounded list (never blocks, never does
IO); when the list is full the record is dropped and counted. :meth:`PredictionLog.flush`
(run by the service's background task, in a thread) writes what is buffered as one
row group of the current file. A file covers ``rotate_s`` seconds of the injected
clock; it is written under a hidden temporary name and renamed into place when it
is complete (at rotation or :meth:`PredictionLog.close`), so readers only ever see
whole files. Names carry the start time and the process id, so worker processes
never collide: ``predictions-20250303T120000Z-pid4242-0.parquet``. Files whose
start is older than the retention are deleted at each rotation.

Columns: ``request_id``, ``order_id``, ``time`` (UTC), ``variant``,
``model_version``, ``features`` (the model's feature values as a JSON object;
null for a heuristic answer made without reading features), ``p50_s``, ``p90_s``,
``fallback``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from arrive.clock import Clock
from arrive.errors import ConfigError
from arrive.features.spec import FeatureScalar
from arrive.serving import metrics

logger = logging.getLogger(__name__)

SCHEMA: Final = pa.schema(
    [
        ("request_id", pa.string()),
        ("order_id", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("variant", pa.string()),
        ("model_version", pa.string()),
        ("features", pa.string()),
        ("p50_s", pa.float64()),
        ("p90_s", pa.float64()),
        ("fallback", pa.string()),
    ]
)
_NAME: Final = re.compile(r"^predictions-(\d{8}T\d{6}Z)-pid\d+-\d+\.parquet$")
_STAMP: Final = "%Y%m%dT%H%M%SZ"


class PredictionRecord(NamedTuple):
    """One logged prediction (see the module docstring for the columns)."""

    request_id: str
    order_id: str
    time: datetime
    variant: str
    model_version: str | None
    features: Mapping[str, FeatureScalar] | None
    p50_s: float
    p90_s: float
    fallback: str | None


class PredictionLog:
    """A bounded buffer of predictions and the Parquet files it is written to.

    Args:
        directory: where files go (created on first write).
        clock: record times are the caller's; rotation and retention use this clock.
        buffer: records held before new ones are dropped.
        rotate_s: seconds of clock time one file covers.
        retention_days: files that started longer ago than this are deleted.

    ``append`` is for one thread (the event loop); ``flush`` and ``close`` may run
    in another.
    """

    def __init__(
        self,
        directory: Path,
        clock: Clock,
        *,
        buffer: int = 100_000,
        rotate_s: float = 3600.0,
        retention_days: float = 7.0,
    ) -> None:
        if buffer < 1 or rotate_s <= 0 or retention_days <= 0:
            raise ConfigError("prediction log: buffer, rotate_s and retention_days must be > 0")
        self.directory = Path(directory)
        self.clock = clock
        self.capacity = buffer
        self.rotate = timedelta(seconds=rotate_s)
        self.retention = timedelta(days=retention_days)
        self.dropped = 0
        self.written = 0
        self._records: list[PredictionRecord] = []
        self._swap = threading.Lock()
        self._io = threading.Lock()
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._final: Path | None = None
        self._started: datetime | None = None
        self._seq = 0

    def append(self, record: PredictionRecord) -> bool:
        """Buffer ``record``; False (and counted) when the buffer is full."""
        records = self._records
        if len(records) >= self.capacity:
            self.dropped += 1
            metrics.LOG_DROPPED.inc()
            return False
        records.append(record)
        return True

    def __len__(self) -> int:
        """Records buffered now."""
        return len(self._records)

    def flush(self) -> int:
        """Write the buffered records to the current file (rotating first if due)."""
        with self._swap:
            batch, self._records = self._records, []
        with self._io:
            now = self.clock.now()
            if self._started is not None and now - self._started >= self.rotate:
                self._finish()
            if not batch:
                return 0
            writer = self._writer or self._open(now)
            writer.write_table(_table(batch))
            self.written += len(batch)
            metrics.LOG_WRITTEN.inc(len(batch))
            return len(batch)

    def close(self) -> None:
        """Write what is buffered and complete the current file."""
        self.flush()
        with self._io:
            self._finish()

    def files(self) -> list[Path]:
        """The complete files in the directory, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _NAME.match(p.name))

    def _open(self, now: datetime) -> pq.ParquetWriter:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._started = now
        stamp = now.astimezone(UTC).strftime(_STAMP)
        name = f"predictions-{stamp}-pid{os.getpid()}-{self._seq}.parquet"
        self._seq += 1
        self._final = self.directory / name
        self._tmp = self.directory / f".{name}.tmp"
        self._writer = pq.ParquetWriter(self._tmp, SCHEMA)
        self._expire(now)
        return self._writer

    def _finish(self) -> None:
        if self._writer is not None and self._tmp is not None and self._final is not None:
            self._writer.close()
            os.replace(self._tmp, self._final)
        self._writer = self._tmp = self._final = None
        self._started = None

    def _expire(self, now: datetime) -> None:
        horizon = now - self.retention
        for path in self.files():
            match = _NAME.match(path.name)
            started = datetime.strptime(match.group(1), _STAMP) if match else None
            if started is not None and started.replace(tzinfo=UTC) < horizon:
                path.unlink(missing_ok=True)
                logger.info("prediction log %s deleted (older than the retention)", path.name)


def _table(batch: list[PredictionRecord]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    encode = msgspec.json.encode
    for record in batch:
        columns["request_id"].append(record.request_id)
        columns["order_id"].append(record.order_id)
        columns["time"].append(record.time)
        columns["variant"].append(record.variant)
        columns["model_version"].append(record.model_version)
        features = record.features
        columns["features"].append(None if features is None else encode(features).decode())
        columns["p50_s"].append(record.p50_s)
        columns["p90_s"].append(record.p90_s)
        columns["fallback"].append(record.fallback)
    return pa.table(columns, schema=SCHEMA)
