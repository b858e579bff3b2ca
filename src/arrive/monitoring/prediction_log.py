"""The prediction log: every answer, buffered in memory, written to Parquet in the background.

:meth:`PredictionLog.extend` only adds a request's predictions to bounded column
lists, column by column (never blocks, never does IO; the features are JSON-encoded
right there unless the caller passes them encoded), turned into Arrow record batches
every hundred-odd records; when the buffer is full the predictions that do not fit are
dropped and counted. The service's background task takes the batches on the event
loop (:meth:`~PredictionLog.take`) and writes them in a thread
(:meth:`~PredictionLog.write`) as one row group of the current file: Parquet
encoding runs without the interpreter lock, so the writer never stalls requests.
A file covers ``rotate_s`` seconds of the injected clock; it is written under a
hidden temporary name and renamed into place when it is complete (at rotation or
:meth:`PredictionLog.close`), so readers only ever see whole files. Names carry
the start time, the host name and the process id, so neither the worker processes of
one host nor the replicas sharing one directory (a volume mounted by every pod, where
each container's processes have the same small ids) collide:
``predictions-20250303T120000Z-web-7f9c-pid42-0.parquet``. A temporary file left by a
process that no longer runs is deleted at start, but only one of this host: another
host's file may be in progress. Files whose start is older than
the retention are deleted at each rotation.

Columns: ``request_id``, ``order_id``, ``time`` (UTC), ``variant``,
``model_version``, ``features`` (the model's feature values as a JSON object;
null for a heuristic answer made without reading features), ``p50_s``, ``p90_s``,
``fallback``, ``rollout`` (the rollout whose assignment chose the variant; null
outside one), ``latency_s`` (the service's time on the row's request, from taking it
to its answers or its error; null for shadow rows), ``error`` (null, or the kind of
error the row's request ended in, the service answering 5xx: the row names the variant
and version it was assigned, and has no ``p50_s``/``p90_s``). The last three are null in
files written before they existed.

Failures of the disk (full, the directory removed or replaced by a file, a read-only
or immutable file) never reach the caller: answers go on, and the log stays honest.

* A file is published only complete: footer written, synced to disk (fsync), read
  back (its footer and record count), then renamed into place. A file that failed
  is never published; its temporary file is deleted.
* ``arrive_prediction_log_written_total`` counts only records in published files, so
  it moves when a file is published (rotation, close), not at every write.
* Records lost to a failure are counted in ``arrive_prediction_log_dropped_total``
  by ``reason``: those of the write that failed plus those already in the file in
  progress (at most ``rotate_s`` of records). Reasons: ``no_space`` (disk or quota
  full), ``not_permitted`` (permissions, read-only or immutable), ``not_found`` (the
  directory or the file in progress was removed, or a file stands where the directory
  should be), ``io_error`` (anything else); ``buffer_full`` is the in-memory buffer's
  overflow. ``arrive_prediction_log_failures_total{reason}`` counts failed attempts.
* One line is logged when failures start (no traceback), none while they last, and
  one when a write succeeds again. The next write after a failure starts a new file,
  so the log recovers as soon as the disk does.
* At start (:meth:`PredictionLog.clean`, also run before the first write) the
  temporary files of processes that no longer run and published files without a
  Parquet footer are deleted (one log line). One process writes one log per directory.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from arrive.clock import Clock
from arrive.errors import ConfigError
from arrive.features.spec import FeatureScalar
from arrive.monitoring import metrics
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
        ("rollout", pa.string()),
        ("latency_s", pa.float64()),
        ("error", pa.string()),
    ]
)
OPTIONAL: Final = frozenset({"rollout", "latency_s", "error"})
"""Columns added since the first files: read as nulls from files without them."""
_CHUNK: Final = 128
"""Records converted to Arrow at a time: the request that fills a chunk pays for its
conversion (about 65 µs a call plus 1 µs a record here), so small chunks keep that
request's delay small (512 added ~2 ms to every fifth batch of 100 orders)."""
_WRITER: Final = {
    "compression": "zstd",
    "use_dictionary": ["variant", "model_version", "fallback", "rollout", "error"],
}
"""Parquet options: dictionaries only for the few-valued columns (building one for the
features, ids or numbers is wasted work, thrown away at each row group), and zstd,
which here took less time than snappy and wrote a third of the bytes (81 against 245
bytes a record)."""
_encode: Final = msgspec.json.encode
Columns = tuple[list[Any], ...]
"""Buffered records as one list per column of :data:`SCHEMA` (time in epoch µs,
features as JSON)."""
_NAME: Final = re.compile(r"^predictions-(\d{8}T\d{6}Z)-(?:[A-Za-z0-9._-]+-)?pid\d+-\d+\.parquet$")
_TEMP: Final = re.compile(
    r"^\.predictions-\d{8}T\d{6}Z-(?:([A-Za-z0-9._-]+)-)?pid(\d+)-\d+\.parquet\.tmp$"
)
"""A file in progress, its host (absent in names of earlier versions) and process."""
_STAMP: Final = "%Y%m%dT%H%M%SZ"
_MAGIC: Final = b"PAR1"
BUFFER_FULL: Final = "buffer_full"
_REASONS: Final = {
    errno.ENOSPC: "no_space",
    errno.EDQUOT: "no_space",
    errno.EFBIG: "no_space",
    errno.EACCES: "not_permitted",
    errno.EPERM: "not_permitted",
    errno.EROFS: "not_permitted",
    errno.ENOENT: "not_found",
    errno.ENOTDIR: "not_found",
    errno.EEXIST: "not_found",  # a file where the directory should be
}
"""The ``reason`` label of a failure, by ``errno``; others are ``io_error``."""


class Predictions(NamedTuple):
    """Predictions, column by column (see the module docstring for the columns): those of
    one request share one time; shadow rows of several requests give one a row."""

    request_id: Sequence[str]
    order_id: Sequence[str]
    time: datetime | Sequence[datetime]
    variant: Sequence[str]
    model_version: Sequence[str | None]
    features: Sequence[Mapping[str, FeatureScalar] | bytes | None]
    """The values, or their JSON already encoded (bytes)."""
    p50_s: Sequence[float | None]
    p90_s: Sequence[float | None]
    fallback: Sequence[str | None]
    rollout: Sequence[str | None] = ()
    """Empty: outside any rollout (every row null)."""
    latency_s: Sequence[float | None] = ()
    """The service's time on each row's request, seconds (empty: not measured, e.g. a
    shadow row, scored after the answer)."""
    error: Sequence[str | None] = ()
    """Empty: no row's request ended in an error (every row null)."""

    def times(self) -> list[datetime]:
        """The time of each row."""
        if isinstance(self.time, datetime):
            return [self.time] * len(self.request_id)
        return list(self.time)


class Sink(Protocol):
    """A file open for writing, as an :data:`Opener` returns it: pyarrow writes through
    ``write`` and ``tell``; the log then flushes it, syncs it (``fileno``) and closes it.
    A native Arrow file and a Python binary file both qualify."""

    def write(self, data: bytes, /) -> int: ...

    def tell(self) -> int: ...

    def flush(self) -> None: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


Opener = Callable[[Path], Sink]
"""Creates (or truncates) a file for writing: the seam through which tests inject a
failing disk (:class:`arrive.testing.disk.FullDisk`)."""


def open_native(path: Path) -> Sink:
    """Create ``path`` as a native Arrow file: pyarrow writes it without taking the
    interpreter lock (a Python file object would take it at every write)."""
    opened: Sink = pa.OSFile(str(path), "wb")
    return opened


@dataclass(slots=True)
class _File:
    """The file in progress, under its temporary name until published."""

    writer: pq.ParquetWriter
    sink: Sink
    tmp: Path
    final: Path
    started: datetime
    rows: int = 0


class PredictionLog:
    """A bounded buffer of predictions and the Parquet files it is written to.

    Args:
        directory: where files go (created on first write).
        clock: record times are the caller's; rotation and retention use this clock.
        buffer: records held before new ones are dropped.
        rotate_s: seconds of clock time one file covers.
        retention_days: files that started longer ago than this are deleted.
        opener: creates the files (the real disk by default).

    ``extend`` and ``take`` are for one thread (the event loop); ``write``, ``clean``
    and ``close`` (once extending has stopped) may run in another.

    Attributes:
        dropped: records lost, by reason (see the module docstring).
        written: records in published files.
        failing: the reason of the failure in progress, or None while writes work.
    """

    def __init__(
        self,
        directory: Path,
        clock: Clock,
        *,
        buffer: int = 100_000,
        rotate_s: float = 3600.0,
        retention_days: float = 7.0,
        opener: Opener = open_native,
        host: str | None = None,
    ) -> None:
        if buffer < 1 or rotate_s <= 0 or retention_days <= 0:
            raise ConfigError("prediction log: buffer, rotate_s and retention_days must be > 0")
        self.directory = Path(directory)
        self.clock = clock
        self.capacity = buffer
        self.rotate = timedelta(seconds=rotate_s)
        self.retention = timedelta(days=retention_days)
        self.opener = opener
        self.host = _host_label(socket.gethostname() if host is None else host)
        self.dropped: Counter[str] = Counter()
        self.written = 0
        self.failing: str | None = None
        self._lost = 0  # records dropped since the failure in progress started
        self._full = metrics.LOG_DROPPED.labels(BUFFER_FULL)
        self._columns = _empty()
        self._batches: list[pa.RecordBatch] = []
        self._size = 0
        self._io = threading.Lock()
        self._file: _File | None = None
        self._cleaned = False
        self._seq = 0

    def extend(self, predictions: Predictions) -> int:
        """Buffer ``predictions``; returns how many were kept: those beyond the buffer's
        capacity are dropped (and counted)."""
        count = len(predictions.request_id)
        kept = max(0, min(count, self.capacity - self._size))
        if kept < count:
            self.dropped[BUFFER_FULL] += count - kept
            self._full.inc(count - kept)
        if not kept:
            return 0
        self._size += kept
        encoded = [
            found if found is None or type(found) is bytes else _encode(found)
            for found in predictions.features[:kept]
        ]
        time = predictions.time
        values: tuple[Sequence[Any], ...] = (  # in the order of SCHEMA
            predictions.request_id,
            predictions.order_id,
            [to_epoch_us(time)] * kept
            if isinstance(time, datetime)
            else [to_epoch_us(t) for t in time[:kept]],
            predictions.variant,
            predictions.model_version,
            encoded,
            predictions.p50_s,
            predictions.p90_s,
            predictions.fallback,
            predictions.rollout or [None] * kept,
            predictions.latency_s or [None] * kept,
            predictions.error or [None] * kept,
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
        """Append ``batches`` to the file in progress (publishing it first if its time is
        up); any thread. Returns the records appended (written once their file is
        published), or 0 when a failure dropped them (counted; never raised)."""
        with self._io:
            self._clean_once()
            now = self.clock.now()
            if self._file is not None and now - self._file.started >= self.rotate:
                self._publish()
            if not sum(batch.num_rows for batch in batches):
                return 0
            return self._append(pa.Table.from_batches(batches, SCHEMA), now)

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
        """Write what is buffered and publish the file in progress."""
        self.flush()
        with self._io:
            self._publish()

    def clean(self) -> None:
        """Delete what earlier processes left in the directory; only the first call acts.

        Deleted: temporary files of processes that no longer run (or of an earlier
        process with this one's id), and published files without a Parquet footer
        (earlier versions could publish one when the disk filled). :meth:`write` calls
        this before its first file; the service calls it when it starts.
        """
        with self._io:
            self._clean_once()

    def files(self) -> list[Path]:
        """The complete files in the directory, oldest first."""
        return published(self.directory)

    def _append(self, table: pa.Table, now: datetime) -> int:
        try:
            current = self._file or self._open(now)
            _check_linked(current)
            current.writer.write_table(table)
        except OSError as exc:
            self._fail(exc, table.num_rows + self._abandon())
            return 0
        current.rows += table.num_rows
        self._recovered()
        return int(table.num_rows)

    def _open(self, now: datetime) -> _File:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = now.astimezone(UTC).strftime(_STAMP)
        name = f"predictions-{stamp}-{self.host}-pid{os.getpid()}-{self._seq}.parquet"
        self._seq += 1
        tmp = self.directory / f".{name}.tmp"
        sink = self.opener(tmp)
        try:
            writer = pq.ParquetWriter(sink, SCHEMA, **_WRITER)
        except OSError:
            _discard(sink, tmp)
            raise
        self._file = _File(writer, sink, tmp, self.directory / name, now)
        self._expire(now)
        return self._file

    def _publish(self) -> None:
        """Complete the file in progress (footer, fsync, read back) and rename it into
        place; a failure drops its records instead."""
        current = self._file
        if current is None:
            return
        try:
            current.writer.close()
            current.sink.flush()
            os.fsync(current.sink.fileno())
            current.sink.close()
            _check_complete(current.tmp, current.rows)
            os.replace(current.tmp, current.final)
        except OSError as exc:
            self._fail(exc, self._abandon())
            return
        self._file = None
        _sync_directory(self.directory)
        self.written += current.rows
        metrics.LOG_WRITTEN.inc(current.rows)

    def _abandon(self) -> int:
        """Give up the file in progress (never published, its temporary file deleted);
        returns the records it held."""
        current, self._file = self._file, None
        if current is None:
            return 0
        current.writer.is_open = False  # closing would write a footer over a broken file
        _discard(current.sink, current.tmp)
        return current.rows

    def _fail(self, exc: OSError, lost: int) -> None:
        reason = failure_reason(exc)
        metrics.LOG_FAILURES.labels(reason).inc()
        if lost:
            self.dropped[reason] += lost
            metrics.LOG_DROPPED.labels(reason).inc(lost)
        self._lost += lost
        if self.failing is None:
            self.failing = reason
            logger.error(
                "prediction log: cannot write to %s (%s: %s); records are dropped and "
                "counted until writing works again",
                self.directory,
                reason,
                exc,
            )

    def _recovered(self) -> None:
        if self.failing is not None:
            logger.warning(
                "prediction log: writing to %s again (%d records dropped while it failed)",
                self.directory,
                self._lost,
            )
            self.failing, self._lost = None, 0

    def _clean_once(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        try:
            paths = list(self.directory.iterdir())
        except OSError:  # missing: nothing to clean; unusable: the first write says why
            return
        removed = sorted(
            path.name for path in paths if _leftover(path, self.host) and _removed(path)
        )
        if removed:
            more = f" and {len(removed) - 10} more" if len(removed) > 10 else ""
            logger.warning(
                "prediction log: deleted %d leftovers of earlier runs in %s: %s%s",
                len(removed),
                self.directory,
                " ".join(removed[:10]),
                more,
            )

    def _expire(self, now: datetime) -> None:
        horizon = now - self.retention
        try:
            for path in self.files():
                match = _NAME.match(path.name)
                started = datetime.strptime(match.group(1), _STAMP) if match else None
                if started is not None and started.replace(tzinfo=UTC) < horizon:
                    path.unlink(missing_ok=True)
                    logger.info("prediction log %s deleted (older than the retention)", path.name)
        except OSError as exc:  # the next rotation tries again
            logger.warning("prediction log: retention in %s failed: %s", self.directory, exc)


def published(directory: Path) -> list[Path]:
    """The published (complete) log files in ``directory``, oldest first; none when it
    does not exist. Files in progress (hidden temporary names) are never listed."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def failure_reason(exc: OSError) -> str:
    """The ``reason`` label of a failed file operation (see the module docstring)."""
    return _REASONS.get(exc.errno or 0, "io_error")


def _check_linked(current: _File) -> None:
    """Raise if the file in progress was deleted (its directory removed): writes would
    still succeed, into a file that can never be published. One ``fstat`` a write."""
    if os.fstat(current.sink.fileno()).st_nlink == 0:
        raise FileNotFoundError(errno.ENOENT, "the file in progress was deleted", str(current.tmp))


def _check_complete(path: Path, rows: int) -> None:
    """Raise unless ``path`` reads back as Parquet holding ``rows`` records."""
    try:
        found = pq.read_metadata(path).num_rows
    except pa.ArrowInvalid as exc:
        raise OSError(errno.EIO, f"{path.name} does not read back: {exc}") from exc
    if found != rows:
        raise OSError(errno.EIO, f"{path.name} holds {found} records, not {rows}")


def _discard(sink: Sink, tmp: Path) -> None:
    """Close and delete a file that will not be published. Either may fail on a broken
    disk; what stays behind is deleted by the next start's :meth:`PredictionLog.clean`."""
    with contextlib.suppress(OSError, ValueError):
        sink.close()
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    """Make a rename durable. The file is already published (readable): a failure here
    only risks the rename after a power loss, so it is logged, not counted."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        logger.warning("prediction log: syncing %s failed: %s", directory, exc)


def _host_label(host: str) -> str:
    """``host`` as it goes into file names: letters, digits, dots, dashes."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", host)[:63] or "host"


def _leftover(path: Path, host: str) -> bool:
    """True for a temporary file of this host nobody is writing, or a published file
    without footer."""
    temp = _TEMP.match(path.name)
    if temp is not None:
        if temp.group(1) not in (None, host):
            return False  # another host's: its process may be writing it now
        return not _runs_elsewhere(int(temp.group(2)))
    return _NAME.match(path.name) is not None and not _is_parquet(path)


def _runs_elsewhere(pid: int) -> bool:
    """True if ``pid`` is another process that runs now (its file may be in progress)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _is_parquet(path: Path) -> bool:
    """True unless ``path`` lacks Parquet's magic bytes at either end (a file cut short
    has no footer). A file that cannot be read here is left alone."""
    try:
        with path.open("rb") as file:
            head = file.read(4)
            size = file.seek(0, os.SEEK_END)
            file.seek(max(size - 4, 0))
            tail = file.read(4)
    except OSError:
        return True
    return size >= 12 and head == tail == _MAGIC


def _removed(path: Path) -> bool:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("prediction log: cannot delete the leftover %s: %s", path, exc)
        return False
    return True


def _empty() -> Columns:
    return tuple([] for _ in SCHEMA.names)
