"""A circuit breaker per provider: closed → open → half-open → closed, on an injected clock.

* **closed**: calls pass. It opens after ``failures`` consecutive failures, or when at least
  ``min_calls`` calls ended in the last ``window_s`` seconds and the share of failures among
  them reached ``failure_rate``.
* **open**: calls are refused at once, for ``half_open_after_s`` seconds.
* **half-open**: one probe call passes; its success closes the breaker (the window starts
  afresh), its failure, or its abandonment, opens it for another ``half_open_after_s``: at
  most one probe per interval.

:meth:`CircuitBreaker.allow` hands each call it lets through a :class:`Permit`; a call
reports its outcome with it. An outcome of a call let through before the breaker last
opened is ignored (it says nothing the failures that opened it did not), so such a call
ending while half-open neither closes the breaker nor frees the probe's slot.

Written here rather than taken from a library: aiobreaker, aiocircuitbreaker and purgatory
read wall time themselves (no injectable clock) and wrap calls as decorators, where the
provider guard needs to ask before a call and report after it.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from arrive.clock import Clock
from arrive.errors import ConfigError


class BreakerState(enum.IntEnum):
    """The breaker's state; the value is the ``arrive_provider_breaker_state`` gauge's."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass(frozen=True, slots=True)
class Permit:
    """A call the breaker let through: ``epoch`` is how many times the breaker had opened
    then, ``probe`` whether it is the half-open probe."""

    epoch: int
    probe: bool = False


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a breaker opens and how long it stays open (see the module docstring)."""

    failures: int = 5
    failure_rate: float = 0.5
    min_calls: int = 20
    window_s: float = 10.0
    half_open_after_s: float = 5.0

    def __post_init__(self) -> None:
        if self.failures < 1 or self.min_calls < 1:
            raise ConfigError("breaker.failures and breaker.min_calls must be at least 1")
        if not 0 < self.failure_rate <= 1:
            raise ConfigError("breaker.failure_rate must be in (0, 1]")
        if self.window_s <= 0 or self.half_open_after_s <= 0:
            raise ConfigError("breaker.window_s and breaker.half_open_after_s must be positive")


class CircuitBreaker:
    """One provider's breaker: ask :meth:`allow` before a call, then report it with
    :meth:`succeeded`, :meth:`failed` or :meth:`abandoned` with the permit it gave (module
    docstring). ``on_change`` hears every change of state."""

    def __init__(
        self,
        settings: BreakerSettings,
        clock: Clock,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._window: deque[tuple[float, bool]] = deque()
        self._opened_at = 0.0
        self._probing = False
        self._epoch = 0

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose interval has passed reads half-open)."""
        if self._state is BreakerState.OPEN and self._interval_passed():
            return BreakerState.HALF_OPEN
        return self._state

    def allow(self) -> Permit | None:
        """A permit if a call may go to the vendor now (in half-open, the one probe's), else
        None."""
        if self._state is BreakerState.OPEN and self._interval_passed():
            self._move(BreakerState.HALF_OPEN)
        if self._state is BreakerState.CLOSED:
            return Permit(self._epoch)
        if self._state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return Permit(self._epoch, probe=True)
        return None

    def succeeded(self, permit: Permit | None = None) -> None:
        """A call let through earlier answered (``permit`` None: one let through now)."""
        if self.outdated(permit):
            return
        if self._state is BreakerState.HALF_OPEN:
            self._probing = False
            self._window.clear()
            self._move(BreakerState.CLOSED)
        self._consecutive = 0
        self._record(ok=True)

    def failed(self, permit: Permit | None = None) -> None:
        """A call let through earlier failed (``permit`` None: one let through now)."""
        if self.outdated(permit):
            return
        if self._state is BreakerState.HALF_OPEN:
            self._probing = False
            self._open()
            return
        self._consecutive += 1
        self._record(ok=False)
        if self._consecutive >= self.settings.failures or self._rate_reached():
            self._open()

    def abandoned(self, permit: Permit) -> None:
        """A call let through earlier was cancelled: if it was the probe, the breaker opens
        for another interval (no second probe in this one)."""
        if permit.probe and not self.outdated(permit) and self._state is BreakerState.HALF_OPEN:
            self._probing = False
            self._open()

    def outdated(self, permit: Permit | None) -> bool:
        """Whether a call let through with ``permit`` no longer may be sent, and its outcome
        is ignored: the breaker is open, or opened since, or (half-open) it is not the probe."""
        if self._state is BreakerState.OPEN:
            return True
        if permit is None:
            return False
        return permit.epoch != self._epoch or (
            self._state is BreakerState.HALF_OPEN and not permit.probe
        )

    def _record(self, *, ok: bool) -> None:
        now = self.clock.monotonic()
        self._window.append((now, ok))
        while self._window and self._window[0][0] <= now - self.settings.window_s:
            self._window.popleft()

    def _rate_reached(self) -> bool:
        calls = len(self._window)
        failures = sum(1 for _, ok in self._window if not ok)
        return calls >= self.settings.min_calls and failures >= self.settings.failure_rate * calls

    def _open(self) -> None:
        self._epoch += 1
        self._opened_at = self.clock.monotonic()
        self._consecutive = 0
        self._move(BreakerState.OPEN)

    def _interval_passed(self) -> bool:
        return self.clock.monotonic() - self._opened_at >= self.settings.half_open_after_s

    def _move(self, state: BreakerState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
