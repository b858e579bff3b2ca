"""The monitor's loop: prediction log + outcome events → join → quality files and figures.

Each :meth:`Monitor.step` reads what is due (the next log files, a batch of events
from the source, keeping the two inputs' event times in step), feeds the join, then
commits after applying, in this order:

1. the quality rows of the windows it closed are written as one Parquet file
   (``quality-<first window>-<last window>.parquet``, temporary name then rename),
   and, with feature drift on, their drift rows beside them (``drift-…parquet``,
   :mod:`arrive.monitoring.monitor_drift`);
2. the checkpoint is replaced (join state, log files consumed, source positions);
3. the source's positions are committed.

A crash after 1 leaves a file the checkpoint does not cover: :meth:`Monitor.resume`
deletes it, and the windows are written again. A crash after 2 makes the source
deliver consumed messages again: positions at or before the checkpoint's are
skipped. So a restart neither loses nor double-counts.

Feature drift (PSI per version and feature, :mod:`arrive.monitoring.monitor_drift`) and
production skew (:mod:`arrive.monitoring.monitor_skew`, every few minutes) are shown by
:attr:`Monitor.gauges`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol

import polars as pl

from arrive.clock import Clock
from arrive.errors import ConfigError, InputFileError
from arrive.ingest.source import EventSource, Position, RawMessage
from arrive.monitoring import checkpoint, log_reader, outcome_events
from arrive.monitoring.checkpoint import Checkpoint
from arrive.monitoring.drift_metrics import DriftMetrics
from arrive.monitoring.join import CLOSED, JoinSettings, OutcomeJoin
from arrive.monitoring.monitor_drift import COUNTS, WindowDrift
from arrive.monitoring.monitor_rollout import RolloutWatch
from arrive.monitoring.monitor_skew import SkewCheck
from arrive.monitoring.quality import QUALITY, Band, aggregate

logger = logging.getLogger(__name__)

_STAMP: Final = "%Y%m%dT%H%M%SZ"
_DRIFT_COUNTS: Final = "drift_counts"
_ROLLOUT_ROWS: Final = "rollout_rows"
_OUTCOME_ROWS: Final = pl.Schema(
    {"order_id": pl.String(), "kind": pl.String(), "outcome_time": pl.Datetime("us", "UTC")}
)


class Baseline(Protocol):
    """The heuristic's P50 for joined rows the model answered.

    To implement, provide at least ``p50_s(rows)``: one value per row of ``rows``
    (:data:`arrive.monitoring.join.CLOSED`), null where it cannot tell.
    """

    def p50_s(self, rows: pl.DataFrame) -> pl.Series: ...


@dataclass(frozen=True)
class MonitorSettings:
    """Where the monitor reads and writes, and how it measures.

    Attributes:
        log_dir: the prediction log's directory.
        out_dir: where quality files go.
        checkpoint: the checkpoint file.
        join: horizon and window.
        band: the calibrated P90 coverage band.
        timezone: the marketplace's zone (segments by local hour).
        batch_size: most events per poll.
        files_per_step: most log files read per step.
        idle_lag_s: on an idle stream, move both inputs' event time to the clock's
            now minus this (None: never, as for a replay).
        partitions: the source's partitions (a Kafka topic's); the outcome input's
            event time moves only once each has delivered events.
    """

    log_dir: Path
    out_dir: Path
    checkpoint: Path
    join: JoinSettings = field(default_factory=JoinSettings)
    band: Band = field(default_factory=Band)
    timezone: str = "UTC"
    batch_size: int = 5000
    files_per_step: int = 4
    idle_lag_s: float | None = None
    partitions: int = 1

    def __post_init__(self) -> None:
        for name in ("batch_size", "files_per_step", "partitions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.idle_lag_s is not None and not self.idle_lag_s >= 0:
            raise ConfigError(f"idle_lag_s: must be >= 0, got {self.idle_lag_s}")


class Monitor:
    """Joins, measures and checkpoints (see the module docstring); one thread.

    Args:
        drift: feature drift per closed window (None: off).
        skew: production skew checks (None: off).
        rollout: judges and moves the registry's active rollout every interval
            (:mod:`arrive.monitoring.monitor_rollout`; None: off).

    Attributes:
        latest: quality rows of the last closed window (:data:`QUALITY`).
        gauges: the drift of the last closed window with served features, and the last
            skew check (register it on the metrics registry).
    """

    def __init__(
        self,
        settings: MonitorSettings,
        source: EventSource,
        clock: Clock,
        *,
        baseline: Baseline | None = None,
        drift: WindowDrift | None = None,
        skew: SkewCheck | None = None,
        rollout: RolloutWatch | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.clock = clock
        self.baseline = baseline
        self.drift = drift
        self.skew = skew
        self.rollout = rollout
        self.gauges = DriftMetrics()
        self.saved = Checkpoint()
        self.join = OutcomeJoin(settings.join, self.saved.state)
        self.latest = pl.DataFrame(schema=QUALITY)
        self._uncommitted: list[Position] = []

    @property
    def counts(self) -> dict[str, int]:
        """Totals of the join and the reader (see :class:`arrive.monitoring.join.JoinState`)."""
        return {key: value for key, value in self.saved.state.counts.items() if value}

    def resume(self) -> bool:
        """Load the checkpoint, if any, delete quality files it does not cover, and take
        the last window's figures from the last file."""
        found = checkpoint.load(self.settings.checkpoint)
        if found is not None:
            self.saved = found
            self.join = OutcomeJoin(self.settings.join, found.state)
            self._check_held(found)
            rows = found.held.get(_ROLLOUT_ROWS)
            if self.rollout is not None and rows is not None:
                with contextlib.suppress(KeyError):  # rows of another shape: start afresh
                    self.rollout.rows = checkpoint.upgrade(rows, CLOSED)
        self._drop_uncovered(found.state.closed_until if found else None)
        written = quality_files(self.settings.out_dir)
        if written:  # scrapes after a restart see the last window, not nothing
            self.latest = _last_window(pl.read_parquet(written[-1]))
        drifts = drift_files(self.settings.out_dir)
        if drifts:
            self.gauges.set_drift(_last_window(pl.read_parquet(drifts[-1])))
        return found is not None

    def watermarks(self) -> dict[str, datetime | None]:
        """The latest event time of each input, and the end of the last closed window."""
        state = self.join.state
        return {
            "prediction log": state.predictions_seen,
            "outcomes": state.outcomes_seen,
            "windows closed until": state.closed_until,
        }

    def backlog(self) -> int:
        """Prediction-log files not read yet."""
        return len(log_reader.unread(self.settings.log_dir, self.saved.log_files))

    def step(self) -> int:
        """Read, join, write, checkpoint, commit; returns the inputs handled (files + events)."""
        handled = self._read_log() if self._log_due() else 0
        polled: list[RawMessage] = []
        if self._source_due(handled):
            polled = self.source.poll(self.settings.batch_size, 0.2)
            self._apply(self._fresh(polled))
        if not handled and not polled:
            self._idle()
        closed = self.join.advance()
        if handled or polled or not closed.is_empty():
            self._close(closed)
        if self.skew is not None and self.skew.due():
            self._measure_skew()
        if self.rollout is not None and self.rollout.due():
            self.rollout.evaluate(self.join.open_rows())
        return handled + len(polled)

    def finish(self) -> None:
        """Close every window (a finite replay has ended): both inputs are done."""
        state = self.join.state
        seen = [t for t in (state.predictions_seen, state.outcomes_seen) if t is not None]
        if not seen:
            return
        end = max(seen) + self.settings.join.horizon + self.settings.join.window
        state.predictions_seen = state.outcomes_seen = end
        self._close(self.join.advance())
        if self.skew is not None:
            self._measure_skew()
        if self.rollout is not None:
            self.rollout.evaluate(self.join.open_rows())

    def _log_due(self) -> bool:
        state = self.join.state
        if state.predictions_seen is None or self.source.exhausted:
            return True
        return state.outcomes_seen is None or state.predictions_seen <= state.outcomes_seen

    def _source_due(self, files_read: int) -> bool:
        state = self.join.state
        if not files_read or state.outcomes_seen is None or state.predictions_seen is None:
            return True
        return state.outcomes_seen <= state.predictions_seen

    def _read_log(self) -> int:
        paths = log_reader.unread(self.settings.log_dir, self.saved.log_files)
        paths = paths[: self.settings.files_per_step]
        frames = []
        for path in paths:
            self.saved.log_files.add(path.name)
            try:
                frames.append(log_reader.read_log(path))
            except log_reader.SkippedFile as exc:
                self.saved.state.counts[f"skipped:{exc.reason}"] += 1
                logger.warning("prediction log file skipped: %s", exc)
        if frames:
            self._add_log(pl.concat(frames))
        return len(paths)

    def _add_log(self, log: pl.DataFrame) -> None:
        closed_until = self.join.state.closed_until
        self.join.add_predictions(log_reader.prepare(log))
        if self.skew is not None:
            self.skew.add(log)
        if self.drift is None:
            return
        if closed_until is not None:  # the join drops them too (late_prediction)
            log = log.filter(pl.col("time") >= closed_until)
        held = self.saved.held
        held[_DRIFT_COUNTS] = self.drift.add(log, held.get(_DRIFT_COUNTS, _NO_COUNTS))

    def _fresh(self, messages: list[RawMessage]) -> dict[str, list[bytes]]:
        """The payloads of ``messages`` not consumed before (a restart redelivers
        uncommitted ones), by ``"stream|partition"``. Offsets grow within a partition,
        so only the first messages of each need comparing."""
        where = [message.position for message in messages]
        partitions = {(position.stream, position.partition) for position in where}
        if len(partitions) != 1:
            return self._fresh_by_partition(messages)
        # one partition (a Redis stream, a file, most Kafka polls): no per-message loop
        self._uncommitted.extend(where)
        first = 0
        while first < len(where) and _consumed(where[first], self.saved.positions):
            first += 1
        if first == len(where):
            return {}
        key = f"{where[0].stream}|{where[0].partition}"
        self.saved.positions[key] = where[-1].offset
        return {key: [message.payload for message in messages[first:]]}

    def _fresh_by_partition(self, messages: list[RawMessage]) -> dict[str, list[bytes]]:
        positions = self.saved.positions
        payloads: dict[tuple[str, int], list[bytes]] = {}
        last: dict[tuple[str, int], int | str] = {}
        for message in messages:
            position = message.position
            key = (position.stream, position.partition)
            part = payloads.get(key)
            if part is None:
                if _consumed(position, positions):
                    continue
                part = payloads[key] = []
            part.append(message.payload)
            last[key] = position.offset
        positions.update({f"{stream}|{p}": offset for (stream, p), offset in last.items()})
        self._uncommitted.extend(m.position for m in messages)
        return {f"{stream}|{p}": part for (stream, p), part in payloads.items()}

    def _apply(self, payloads: dict[str, list[bytes]]) -> None:
        """Decode each partition's payloads; the outcome input's event time is the
        earliest of its partitions' latest (a partition read behind the others holds
        the watermark back, so its outcomes are not taken for late)."""
        seen = self.saved.partitions_seen
        for key, part in payloads.items():
            decoded = outcome_events.decode(part)
            if decoded.refused:
                self.saved.state.counts["refused"] += decoded.refused
            self.join.add_outcomes(decoded.outcomes, decoded.created)
            if decoded.latest is not None and (key not in seen or decoded.latest > seen[key]):
                seen[key] = decoded.latest
        if len(seen) >= self.settings.partitions:
            self.join.saw_events_until(min(seen.values()))

    def _idle(self) -> None:
        lag_s = self.settings.idle_lag_s
        if lag_s is None:
            return
        moment = self.clock.now() - timedelta(seconds=lag_s)
        state = self.join.state
        for name in ("predictions_seen", "outcomes_seen"):
            current = getattr(state, name)
            if current is None or current < moment:
                setattr(state, name, moment)

    def _close(self, closed: pl.DataFrame) -> None:
        if not closed.is_empty():
            if self.baseline is not None:
                closed = closed.with_columns(heuristic_p50_s=self.baseline.p50_s(closed))
            settings = self.settings
            table = aggregate(closed, settings.join.window_s, settings.timezone, settings.band)
            self._write("quality", table)
            self.latest = _last_window(table)
            if self.rollout is not None:
                self.rollout.add(closed)
                self.saved.held[_ROLLOUT_ROWS] = self.rollout.rows
        self._close_drift()
        checkpoint.save(self.settings.checkpoint, self.saved)
        if self._uncommitted:
            self.source.commit(self._uncommitted)
            self._uncommitted = []

    def _close_drift(self) -> None:
        until = self.join.state.closed_until
        held = self.saved.held
        if self.drift is None or until is None or _DRIFT_COUNTS not in held:
            return
        table, held[_DRIFT_COUNTS] = self.drift.close(held[_DRIFT_COUNTS], until)
        if not table.is_empty():
            self._write("drift", table)
            self.gauges.set_drift(_last_window(table))

    def _measure_skew(self) -> None:
        if self.skew is None:
            return
        found = self.skew.run()
        if found is not None:
            self.gauges.set_skew(found)

    def _check_held(self, found: Checkpoint) -> None:
        counts = found.held.get(_DRIFT_COUNTS)
        if counts is not None and counts.schema != COUNTS:
            raise InputFileError(
                f"--checkpoint {self.settings.checkpoint}: held drift counts of another shape"
            )

    def _write(self, kind: str, table: pl.DataFrame) -> None:
        starts = table.get_column("window_start")
        name = f"{kind}-{_stamp(starts.min())}-{_stamp(starts.max())}.parquet"
        out = self.settings.out_dir
        out.mkdir(parents=True, exist_ok=True)
        temporary = out / f".{name}.tmp"
        table.write_parquet(temporary)
        os.replace(temporary, out / name)

    def _drop_uncovered(self, closed_until: datetime | None) -> None:
        """Delete quality files of windows the checkpoint has not closed (a crash came
        between writing them and saving the checkpoint): they are written again."""
        out = self.settings.out_dir
        if not out.is_dir():
            return
        for path in [*quality_files(out), *drift_files(out)]:
            if closed_until is None or last_window(path) >= closed_until:
                logger.warning("%s: not covered by the checkpoint, written again", path.name)
                path.unlink()


def quality_files(out_dir: Path) -> list[Path]:
    """The quality files in ``out_dir``, oldest windows first."""
    return sorted(Path(out_dir).glob("quality-*-*.parquet"))


def last_window(path: Path) -> datetime:
    """The start of the last window of the quality or drift file ``path`` (from its name)."""
    return datetime.strptime(path.stem.split("-")[2], _STAMP).replace(tzinfo=UTC)


def drift_files(out_dir: Path) -> list[Path]:
    """The feature-drift files in ``out_dir``, oldest windows first."""
    return sorted(Path(out_dir).glob("drift-*-*.parquet"))


def _last_window(table: pl.DataFrame) -> pl.DataFrame:
    last = table.get_column("window_start").max()
    return table.filter(pl.col("window_start") == last)


_NO_COUNTS: Final = pl.DataFrame(schema=COUNTS)


def _stamp(moment: object) -> str:
    if not isinstance(moment, datetime):
        raise TypeError(f"window start {moment!r} is not a time")
    return moment.astimezone(UTC).strftime(_STAMP)


def _consumed(position: Position, positions: dict[str, int | str]) -> bool:
    last = positions.get(f"{position.stream}|{position.partition}")
    if last is None:
        return False
    return _order(position.offset) <= _order(last)


def _order(offset: int | str) -> tuple[int, ...]:
    """Offsets as comparable tuples: ints, and Redis entry ids ``"<ms>-<seq>"``."""
    if isinstance(offset, int):
        return (offset,)
    return tuple(int(part) for part in offset.split("-"))
