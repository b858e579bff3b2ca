"""The only place Arrive reads wall time.

Services take a :class:`Clock`; tests pass a :class:`ManualClock` and move it by
hand, so nothing waits on real time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of the current time.

    To implement, provide at least ``now()`` (timezone-aware UTC) and
    ``monotonic()`` (seconds, only differences are meaningful).
    """

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SleepingClock(Clock, Protocol):
    """A clock that can also wait, for pacing (e.g. replaying events at a speed factor).

    To implement, provide at least ``now()``, ``monotonic()`` and
    ``sleep_until(monotonic_s)``, which returns once ``monotonic()`` has reached
    ``monotonic_s`` (at once if it already has).
    """

    def sleep_until(self, monotonic_s: float) -> None: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep_until(self, monotonic_s: float) -> None:
        delay_s = monotonic_s - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)


class ManualClock:
    """A clock that moves only when told to: for tests and replays."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both the wall clock and the monotonic clock forward."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def sleep_until(self, monotonic_s: float) -> None:
        """Move the clock forward to ``monotonic_s`` at once (no-op if already there)."""
        if monotonic_s > self._mono:
            self.advance(monotonic_s - self._mono)

    def set(self, when: datetime) -> None:
        """Jump the wall clock to ``when`` (not earlier than now)."""
        self.advance((when - self._now).total_seconds())
