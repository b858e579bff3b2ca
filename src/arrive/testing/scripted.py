"""A provider whose answers, latencies and failures a test writes in advance.

:class:`ScriptedProvider` is a real :class:`~arrive.providers.base.TravelTimeProvider` and
:class:`~arrive.providers.base.WeatherProvider` (both kinds of call play the same script): it
takes its latency with ``asyncio.sleep`` (no wall time under
:func:`arrive.testing.virtual_time.run_virtual`), honours ``timeout_s`` like an HTTP
adapter would, and records every request with the injected clock's time::

    vendor = ScriptedProvider("osrm", clock, default=Step(seconds=300.0, latency_s=0.05))
    vendor.script(Step(error="http_5xx"), Step(error="rate_limited", retry_after_s=2.0))
    vendor.default = Step(error="connection")     # an outage from now on
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from arrive.clock import Clock
from arrive.providers.base import Leg, ProviderError, TravelTime, Weather


@dataclass(frozen=True, slots=True)
class Step:
    """One scripted request: after ``latency_s``, the answer ``seconds`` (travel time) or
    ``temperature_c`` (weather) or, when ``error`` is a reason, a :class:`ProviderError`
    (with ``retry_after_s`` for a 429)."""

    seconds: float = 300.0
    temperature_c: float = 15.0
    latency_s: float = 0.0
    error: str | None = None
    retry_after_s: float | None = None


class ScriptedProvider:
    """Answers each request with the next scripted :class:`Step`, then with ``default``.

    Attributes:
        requests: the monotonic time of every request received.
        in_flight: requests being answered now; ``max_in_flight`` the most at once.
    """

    def __init__(self, name: str, clock: Clock, *, default: Step | None = None) -> None:
        self.name = name
        self.clock = clock
        self.default = default or Step()
        self.requests: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False
        self._script: deque[Step] = deque()

    def script(self, *steps: Step) -> None:
        """Answer the next requests with ``steps``, in order."""
        self._script.extend(steps)

    async def travel_time(self, leg: Leg, *, timeout_s: float) -> TravelTime:
        step = await self._play(timeout_s)
        return TravelTime(step.seconds, self.name)

    async def current(self, lat: float, lon: float, *, timeout_s: float) -> Weather:
        step = await self._play(timeout_s)
        return Weather(step.temperature_c, 0.0, 0.0, self.name)

    async def _play(self, timeout_s: float) -> Step:
        """Take the next step's time and raise its error, if any."""
        self.requests.append(self.clock.monotonic())
        step = self._script.popleft() if self._script else self.default
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if step.latency_s > timeout_s:
                await asyncio.sleep(timeout_s)
                raise ProviderError(self.name, "timeout", f"scripted {step.latency_s} s")
            await asyncio.sleep(step.latency_s)
        finally:
            self.in_flight -= 1
        if step.error is not None:
            raise ProviderError(self.name, step.error, "scripted", step.retry_after_s)
        return step

    async def close(self) -> None:
        self.closed = True
