"""The embedded default's feature feed: a data directory's event log replayed into the
in-process store, so a fresh ``arrive serve --replay-dir DIR`` answers from real features.

:class:`ReplayFeeder` applies the log with a
:class:`~arrive.features.online.replay.LogReplay` (event-time order, through an
:class:`~arrive.features.online.engine.OnlineEngine`), as fast as possible, in a
background thread. Its :attr:`ReplayFeeder.clock` is the replay's time: ``now()``
is the latest event time applied (the log's end once the replay is over), so
features are read as of the replayed history rather than as of a wall clock that is
months later (which would make every feature stale).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from arrive import datadir
from arrive.clock import SystemClock
from arrive.datadir import local_timezone
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.replay import LogReplay, replay_order
from arrive.store.base import OnlineStore

logger = logging.getLogger(__name__)

CHUNK_ROWS: Final = 4096
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class ReplayClock:
    """The time of a replay: the latest event time its feeder applied."""

    def __init__(self) -> None:
        self._now = _EPOCH
        self._system = SystemClock()

    def now(self) -> datetime:
        """The latest event time applied (1970-01-01 before the first)."""
        return self._now

    def monotonic(self) -> float:
        """The machine's monotonic seconds (durations are real, not replayed)."""
        return self._system.monotonic()

    def move_to(self, when: datetime) -> None:
        """Advance to ``when`` (never back)."""
        self._now = max(self._now, when)


class ReplayFeeder:
    """Replays ``directory``'s event log into ``store`` in a background thread.

    Args:
        directory: a data directory (``arrive import`` / ``arrive simulate`` output).
        store: the store the engine writes (the service reads the same one).
        chunk_rows: events applied per engine call.

    Raises:
        InputFileError: ``directory`` has no event log (at construction).
    """

    def __init__(self, directory: Path, store: OnlineStore, chunk_rows: int = CHUNK_ROWS) -> None:
        self.directory = Path(directory)
        self._events = datadir.scan_events(self.directory)
        self.engine = OnlineEngine(store, local_timezone=local_timezone(self.directory))
        self.clock = ReplayClock()
        self.chunk_rows = chunk_rows
        self.applied = 0
        self.error: str | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def done(self) -> bool:
        """True once the whole log is applied (or the replay failed or was stopped)."""
        return self._done.is_set()

    def start(self) -> None:
        """Start the replay thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="replay-feeder", daemon=True)
            self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until :attr:`done`; True if it is."""
        return self._done.wait(timeout_s)

    def stop(self) -> None:
        """Stop after the chunk in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            replay = LogReplay(replay_order(self._events).collect(), self.engine)
            while not replay.done:
                if self._stop.is_set():
                    return
                self.applied += replay.apply_next(self.chunk_rows)
                self.clock.move_to(replay.last_time or _EPOCH)
            logger.info("replayed %d events from %s", self.applied, self.directory)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            logger.error("replay of %s failed: %s", self.directory, self.error)
        finally:
            self._done.set()
