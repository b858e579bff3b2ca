"""Where ingested events go to become online features: the engine, its dead letters
for late events, and its checkpoints.

A :class:`FeatureSink` is the ``apply`` of an
:class:`~arrive.ingest.runner.IngestRunner` and its
:class:`~arrive.ingest.runner.Checkpointer`: the engine's state is saved to a file
every few seconds (atomically) and the runner commits the source only after a
save, so a process killed at any point restarts from the last save and the last
commit and ends with the features of an uninterrupted run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from arrive.clock import Clock
from arrive.errors import InputFileError
from arrive.features.online.engine import OnlineEngine
from arrive.ingest.deadletter import DeadLetter, DeadLetterRecord
from arrive.ingest.source import Position
from arrive.schema.codec import encode_event
from arrive.schema.events import AnyEvent


class FeatureSink:
    """Applies events to an :class:`OnlineEngine` and checkpoints it.

    Args:
        engine: the engine (its store receives the features).
        dead_letter: where events refused as late go, with the reason.
        clock: for checkpoint timing and dead-letter times.
        state_path: the checkpoint file (None: no checkpoints; the runner then
            commits after every batch and a restart starts from empty state).
        every_s: seconds between checkpoints.
    """

    def __init__(
        self,
        engine: OnlineEngine,
        dead_letter: DeadLetter,
        clock: Clock,
        *,
        state_path: Path | None = None,
        every_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self.dead_letter = dead_letter
        self.clock = clock
        self.state_path = state_path
        self.every_s = every_s
        self._saved_at = clock.monotonic()

    def __call__(self, events: Sequence[AnyEvent]) -> None:
        """Apply ``events``; late ones go to the dead letter with their reason."""
        refused = self.engine.apply(events)
        if refused:
            now = self.clock.now()
            self.dead_letter.write(
                [
                    DeadLetterRecord(
                        reason=r.reason,
                        field=r.field,
                        payload=encode_event(r.event),
                        position=Position("late", 0, r.event.event_id),
                        time=now,
                    )
                    for r in refused
                ]
            )

    def idle(self) -> None:
        """No event is arriving: let the engine's watermark follow the clock (see
        :meth:`OnlineEngine.idle`). For live sources only — pass it as the runner's
        ``on_idle`` — never for a replay of past events, whose times the clock says
        nothing about."""
        self.engine.idle(self.clock.now())

    def resume(self) -> bool:
        """Restore the engine from the checkpoint file if there is one; True if restored.

        Raises:
            InputFileError: the file cannot be read.
            ConfigError: it is not a checkpoint of these feature definitions.
        """
        if self.state_path is None or not self.state_path.exists():
            return False
        try:
            data = self.state_path.read_bytes()
        except OSError as exc:
            raise InputFileError(f"{self.state_path}: cannot read the checkpoint ({exc})") from exc
        self.engine.restore(data)
        return True

    def due(self) -> bool:
        """See :meth:`arrive.ingest.runner.Checkpointer.due`."""
        if self.state_path is None:
            return True
        return self.clock.monotonic() - self._saved_at >= self.every_s

    def save(self) -> None:
        """Write the checkpoint atomically (a reader never sees half a file)."""
        self._saved_at = self.clock.monotonic()
        if self.state_path is None:
            return
        data = self.engine.checkpoint()
        directory = self.state_path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".checkpoint-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.state_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
