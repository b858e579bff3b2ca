"""Run a coroutine on an event loop whose time is a :class:`~arrive.clock.ManualClock`.

Whenever the loop has nothing ready and would wait for a timer, the clock jumps to that
timer instead: ``asyncio.sleep``, ``asyncio.timeout`` and ``loop.call_later`` take no wall
time, and the components under test, given the same clock, see the same "now"::

    clock = ManualClock()
    result = run_virtual(scenario(clock), clock)

Only for code whose waiting is all timers (in-process providers, caches, breakers): a
wait on a socket or a thread would be skipped over, not awaited.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

from arrive.clock import ManualClock

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, with nothing ready, moves the clock by the timeout instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout is None or timeout <= 0:
            return ready if ready or timeout == 0 else super().select(timeout)
        self._clock.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is ``clock.monotonic()`` and which never waits on timers."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(selector=_JumpingSelector(clock))
        self._virtual_clock = clock

    def time(self) -> float:
        return self._virtual_clock.monotonic()


def run_virtual(coro: Coroutine[Any, Any, T], clock: ManualClock) -> T:
    """Run ``coro`` to completion on a :class:`VirtualTimeLoop` over ``clock``; tasks left
    running at the end are cancelled, as :func:`asyncio.run` does."""
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(clock)) as runner:
        return runner.run(coro)
