"""The test support the provider tests stand on: virtual time, the scripted vendor, and
the provider metrics on the service's /metrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from arrive.clock import ManualClock
from arrive.monitoring.metrics import render
from arrive.providers.base import Leg, ProviderError
from arrive.providers.guard import GuardedProvider
from arrive.testing.scripted import ScriptedProvider, Step
from arrive.testing.virtual_time import run_virtual

LEG = Leg(37.77, -122.42, 37.79, -122.40, datetime(2024, 1, 1, 12, tzinfo=UTC))


def test_virtual_time_moves_the_clock_instead_of_waiting() -> None:
    clock = ManualClock()

    async def scenario() -> tuple[float, bool]:
        wall = time.monotonic()
        await asyncio.sleep(3600.0)
        try:
            async with asyncio.timeout(5.0):
                await asyncio.sleep(60.0)
        except TimeoutError:
            timed_out = True
        else:
            timed_out = False
        assert time.monotonic() - wall < 60.0  # an hour and more passed without waiting
        return clock.monotonic(), timed_out

    assert run_virtual(scenario(), clock) == (3605.0, True)
    assert clock.now() == datetime(2024, 1, 1, 1, 0, 5, tzinfo=UTC)


def test_the_scripted_vendor_plays_its_script_then_its_default() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("script", clock, default=Step(seconds=60.0, latency_s=0.5))
    vendor.script(Step(error="rate_limited", retry_after_s=3.0), Step(seconds=1.0))

    async def scenario() -> list[object]:
        seen: list[object] = []
        for timeout_s in (1.0, 1.0, 1.0, 0.2):
            try:
                seen.append((await vendor.travel_time(LEG, timeout_s=timeout_s)).seconds)
            except ProviderError as exc:
                seen.append((exc.reason, exc.retry_after_s))
        return seen

    assert run_virtual(scenario(), clock) == [("rate_limited", 3.0), 1.0, 60.0, ("timeout", None)]
    assert vendor.requests == [0.0, 0.0, 0.0, 0.5]
    assert vendor.max_in_flight == 1


def test_provider_metrics_are_on_the_service_metrics_page() -> None:
    clock = ManualClock()
    guarded = GuardedProvider(ScriptedProvider("exposed", clock), clock)
    run_virtual(guarded.travel_time(LEG, timeout_s=1.0), clock)
    page = render()[0].decode()
    assert 'arrive_provider_breaker_state{provider="exposed"} 0.0' in page
    assert 'arrive_provider_calls_total{provider="exposed"} 1.0' in page
    assert 'arrive_provider_call_seconds_count{provider="exposed"} 1.0' in page
