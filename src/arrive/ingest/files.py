"""Replay of a data directory's event log as an :class:`~arrive.ingest.source.EventSource`.

Rows of ``DIR/events`` are delivered in event-time order (ties by ``event_id``),
each as its canonical JSON, either as fast as possible or paced at a multiple of
real time by an injected :class:`~arrive.clock.SleepingClock` (tests use
:class:`~arrive.clock.ManualClock`, so nothing really waits). A row that is not a
valid event is delivered as the JSON of its non-null columns, so the runner
dead-letters it with its reason rather than losing it.

With a ``checkpoint`` file, :meth:`FileReplaySource.commit` records the next row
to deliver and a new source over the same checkpoint resumes there; without one,
every replay starts at the first row.

The log is read into memory once (columnar); rows are converted to JSON in chunks.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import msgspec
import polars as pl

from arrive.clock import SleepingClock, SystemClock
from arrive.datadir import scan_events
from arrive.errors import ConfigError, SchemaError
from arrive.features.online.replay import replay_order
from arrive.ingest.source import Position, RawMessage
from arrive.schema.codec import encode_event
from arrive.schema.frame import frame_to_events

_Row = tuple[int, float | None, bytes]  # row index, event time (epoch s), payload


class FileReplaySource:
    """Replays ``directory``'s event log.

    Args:
        directory: a data directory (as written by ``arrive import`` / ``arrive simulate``).
        speed: ``None`` to deliver as fast as possible, else the replay speed as a
            multiple of real time (``60.0``: an hour of events in a minute).
        clock: paces a replay at ``speed`` (default: the system clock).
        checkpoint: file holding the next row to deliver; read at start, written on commit.
        chunk_rows: rows converted to JSON at a time.

    Raises:
        ConfigError: ``speed`` is not positive, ``chunk_rows`` < 1, or the checkpoint
            is unreadable or points past the end of the log.
        InputFileError: ``directory`` has no event log.
    """

    def __init__(
        self,
        directory: Path,
        *,
        speed: float | None = None,
        clock: SleepingClock | None = None,
        checkpoint: Path | None = None,
        chunk_rows: int = 4096,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ConfigError(f"speed: must be a positive factor of real time, got {speed}")
        if chunk_rows < 1:
            raise ConfigError(f"chunk_rows: must be at least 1, got {chunk_rows}")
        self.directory = Path(directory)
        self.speed = speed
        self.clock: SleepingClock = clock or SystemClock()
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.chunk_rows = chunk_rows
        self._frame = replay_order(scan_events(self.directory)).collect()
        self._committed = self._read_checkpoint()
        self._next_row = self._committed
        self._buffer: deque[_Row] = deque()
        self._anchor: tuple[float, float] | None = None  # (event time s, monotonic s)

    @property
    def rows(self) -> int:
        """Rows in the event log."""
        return self._frame.height

    def poll(self, max_events: int, timeout_s: float) -> list[RawMessage]:
        """Up to ``max_events`` rows that are due; when pacing and none is due, waits
        (on the clock) up to ``timeout_s`` for the next one."""
        if not self.speed:
            return self._take(max_events)
        deadline = self.clock.monotonic() + timeout_s
        batch: list[RawMessage] = []
        while len(batch) < max_events and (row := self._peek()) is not None:
            if not self._wait_for(row, deadline, holding=bool(batch)):
                break
            batch.extend(self._take(1))
        return batch

    def commit(self, positions: Sequence[Position]) -> None:
        offsets = [p.offset for p in positions if isinstance(p.offset, int)]
        if not offsets or max(offsets) < self._committed:
            return
        self._committed = max(offsets) + 1
        if self.checkpoint is not None:
            _write_atomically(self.checkpoint, msgspec.json.encode({"next_row": self._committed}))

    @property
    def exhausted(self) -> bool:
        return not self._buffer and self._next_row >= self._frame.height

    def close(self) -> None:
        self._buffer.clear()

    def _take(self, count: int) -> list[RawMessage]:
        """The next ``count`` rows (fewer at the end of the log), without pacing."""
        stream = str(self.directory)
        batch: list[RawMessage] = []
        while len(batch) < count and self._peek() is not None:
            rows = [
                self._buffer.popleft() for _ in range(min(count - len(batch), len(self._buffer)))
            ]
            batch.extend(
                RawMessage(payload, Position(stream, 0, index)) for index, _, payload in rows
            )
        return batch

    def _peek(self) -> _Row | None:
        if not self._buffer and self._next_row < self._frame.height:
            chunk = self._frame.slice(self._next_row, self.chunk_rows)
            times = (chunk.get_column("event_time").dt.epoch("us") / 1e6).to_list()
            rows = range(self._next_row, self._next_row + chunk.height)
            self._buffer.extend(zip(rows, times, _encode_chunk(chunk), strict=True))
            self._next_row += chunk.height
        return self._buffer[0] if self._buffer else None

    def _wait_for(self, row: _Row, deadline: float, *, holding: bool) -> bool:
        """Whether ``row`` is due, waiting for it unless a batch is already in hand
        or it falls after ``deadline`` (then waiting until the deadline)."""
        due = self._due(row[1])
        if due <= self.clock.monotonic():
            return True
        if holding:
            return False
        if due > deadline:
            self.clock.sleep_until(deadline)
            return False
        self.clock.sleep_until(due)
        return True

    def _due(self, event_time_s: float | None) -> float:
        if event_time_s is None or self.speed is None:
            return float("-inf")
        if self._anchor is None:
            self._anchor = (event_time_s, self.clock.monotonic())
        first_time_s, first_mono = self._anchor
        return first_mono + (event_time_s - first_time_s) / self.speed

    def _read_checkpoint(self) -> int:
        if self.checkpoint is None or not self.checkpoint.exists():
            return 0
        try:
            state = msgspec.json.decode(self.checkpoint.read_bytes(), type=dict[str, int])
            next_row = state["next_row"]
        except (OSError, msgspec.DecodeError, KeyError) as exc:
            raise ConfigError(f"{self.checkpoint}: not a replay checkpoint ({exc})") from exc
        if not 0 <= next_row <= self._frame.height:
            raise ConfigError(
                f"{self.checkpoint}: next_row {next_row} is outside the event log "
                f"of {self.directory} ({self._frame.height} rows)"
            )
        return next_row


def _encode_chunk(chunk: pl.DataFrame) -> list[bytes]:
    try:
        return [encode_event(event) for event in frame_to_events(chunk)]
    except (SchemaError, msgspec.DecodeError):
        return [_encode_row(chunk.slice(index, 1)) for index in range(chunk.height)]


def _encode_row(row: pl.DataFrame) -> bytes:
    """The row's event, or (when it is not a valid one) the JSON of its non-null columns."""
    try:
        return encode_event(next(frame_to_events(row)))
    except (SchemaError, msgspec.DecodeError):
        values = {
            name: value for name, value in row.row(0, named=True).items() if value is not None
        }
        return msgspec.json.encode(values)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
