"""The prediction log: every answer, buffered in memory, written to Parquet in the background.

:meth:`PredictionLog.extend` only adds a request's predictions to bounded column
lists, column by column (never blocks, never does IO; the features are JSON-encoded
right there), turned into Arrow record batches every hundred-odd records; when the
buffer is full the predictions that do not fit are dropped and counted. The
service's background task takes the batches on the event loop
(:meth:`~PredictionLog.take`) and writes them in a thread
(:meth:`~PredictionLog.write`) as one row group of the current file: Parquet
encoding runs without the interpreter lock, so the writer never stalls requests.
A file covers ``rotate_s`` seconds of the injected clock; it is written under a
hidden temporary name and renamed into place when it is complete (at rotation or
:meth:`PredictionLog.close`), so readers only ever see whole files. Names carry
the start time and the process id, so worker processes never collide:
``predictions-20250303T120000Z-pid4242-0.parquet``. Files whose start is older than
the retention are deleted at each rotation.

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
from collections.abc import Mapping, Sequence
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
from arrive.store.base import to_epoch_us

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
_CHUNK: Final = 128
"""Records converted to Arrow at a time: the request that fills a chunk pays for its
conversion (about 65 µs a call plus 1 µs a record here), so small chunks keep that
request's delay small (512 added ~2 ms to every fifth batch of 100 orders)."""
_WRITER: Final = {"compression": "zstd", "use_dictionary": ["variant", "model_version", "fallback"]}
"""Parquet options: dictionaries only for the few-valued columns (building one for the
features, ids or numbers is wasted work, thrown away at each row group), and zstd,
which here took less time than snappy and wrote a third of the bytes (81 against 245
bytes a record)."""
_encode: Final = msgspec.json.encode
Columns = tuple[list[Any], ...]
"""Buffered records as one list per column of :data:`SCHEMA` (time in epoch µs,
features as JSON)."""
_NAME: Final = re.compile(r"^predictions-(\d{8}T\d{6}Z)-pid\d+-\d+\.parquet$")
_STAMP: Final = "%Y%m%dT%H%M%SZ"


class Predictions(NamedTuple):
    """The predictions of one request, column by column (see the module docstring for
    the columns); they share one time."""

    request_id: Sequence[str]
    order_id: Sequence[str]
    time: datetime
    variant: Sequence[str]
    model_version: Sequence[str | None]
    features: Sequence[Mapping[str, FeatureScalar] | None]
    p50_s: Sequence[float]
    p90_s: Sequence[float]
    fallback: Sequence[str | None]


class PredictionLog:
    """A bounded buffer of predictions and the Parquet files it is written to.

    Args:
        directory: where files go (created on first write).
        clock: record times are the caller's; rotation and retention use this clock.
        buffer: records held before new ones are dropped.
        rotate_s: seconds of clock time one file covers.
        retention_days: files that started longer ago than this are deleted.

    ``extend`` and ``take`` are for one thread (the event loop); ``write`` and
    ``close`` (once extending has stopped) may run in another.
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
        self._columns = _empty()
        self._batches: list[pa.RecordBatch] = []
        self._size = 0
        self._io = threading.Lock()
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._final: Path | None = None
        self._started: datetime | None = None
        self._seq = 0

    def extend(self, predictions: Predictions) -> int:
        """Buffer ``predictions``; returns how many were kept: those beyond the buffer's
        capacity are dropped (and counted)."""
        count = len(predictions.request_id)
        kept = max(0, min(count, self.capacity - self._size))
        if kept < count:
            self.dropped += count - kept
            metrics.LOG_DROPPED.inc(count - kept)
        if not kept:
            return 0
        self._size += kept
        encoded = [
            None if found is None else _encode(found) for found in predictions.features[:kept]
        ]
        values: tuple[Sequence[Any], ...] = (  # in the order of SCHEMA
            predictions.request_id,
            predictions.order_id,
            [to_epoch_us(predictions.time)] * kept,
            predictions.variant,
            predictions.model_version,
            encoded,
            predictions.p50_s,
            predictions.p90_s,
            predictions.fallback,
        )
        columns = self._columns
        for column, part in zip(columns, values, strict=True):
            column.extend(part if len(part) == kept else part[:kept])
        if len(columns[0]) >= _CHUNK:
            self._seal()
        return kept

    def __len__(self) -> int:
        """Records buffered now."""
        return self._size

    def take(self) -> list[pa.RecordBatch]:
        """The buffered records (the buffer starts empty again); same thread as ``extend``."""
        self._seal()
        batches, self._batches, self._size = self._batches, [], 0
        return batches

    def write(self, batches: list[pa.RecordBatch]) -> int:
        """Write ``batches`` to the current file (rotating first if due); any thread."""
        with self._io:
            now = self.clock.now()
            if self._started is not None and now - self._started >= self.rotate:
                self._finish()
            count: int = sum(batch.num_rows for batch in batches)
            if not count:
                return 0
            writer = self._writer or self._open(now)
            writer.write_table(pa.Table.from_batches(batches, SCHEMA))
            self.written += count
            metrics.LOG_WRITTEN.inc(count)
            return count

    def _seal(self) -> None:
        """Turn the buffered columns into an Arrow batch, here, on the appending thread: in
        chunks of :data:`_CHUNK` each conversion is short, and the writer thread then
        holds the interpreter only for moments (a long conversion there would stall
        every request waiting for it)."""
        if self._columns[0]:
            self._batches.append(pa.record_batch(list(self._columns), schema=SCHEMA))
            self._columns = _empty()

    def flush(self) -> int:
        """``write(take())``: for callers that also extend from this thread."""
        return self.write(self.take())

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
        self._writer = pq.ParquetWriter(self._tmp, SCHEMA, **_WRITER)
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


def _empty() -> Columns:
    return tuple([] for _ in SCHEMA.names)
