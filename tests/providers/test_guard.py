"""A guarded provider against a scripted vendor, on virtual time (no wall time passes)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from arrive.clock import ManualClock
from arrive.providers.base import Leg, ProviderError, TravelTimeProvider, WeatherProvider
from arrive.providers.breaker import BreakerSettings, BreakerState
from arrive.providers.guard import GuardedProvider, GuardedWeather
from arrive.providers.retry import HedgeSettings, RetrySettings
from arrive.testing.scripted import ScriptedProvider, Step
from arrive.testing.virtual_time import run_virtual

LEG = Leg(37.77, -122.42, 37.79, -122.40, datetime(2024, 1, 1, 12, tzinfo=UTC))
NO_HEDGE = HedgeSettings(enabled=False)
NO_RETRY = RetrySettings(attempts=1)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def outcome(provider: GuardedProvider, timeout_s: float = 1.0) -> str:
    """The answer's source, or the failure's reason."""
    try:
        return (await provider.travel_time(LEG, timeout_s=timeout_s)).source
    except ProviderError as exc:
        return exc.reason


def test_the_breaker_opens_within_n_failures_and_then_sends_nothing() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("t-open", clock, default=Step(error="http_5xx"))
    guarded = GuardedProvider(
        vendor, clock, breaker=BreakerSettings(failures=5), retry=NO_RETRY, hedge=NO_HEDGE
    )
    refused = sample("arrive_provider_errors_total", provider="t-open", reason="breaker_open")

    async def scenario() -> list[str]:
        return [await outcome(guarded) for _ in range(20)]

    assert run_virtual(scenario(), clock) == ["http_5xx"] * 5 + ["breaker_open"] * 15
    assert len(vendor.requests) == 5
    assert sample("arrive_provider_breaker_state", provider="t-open") == BreakerState.OPEN
    assert sample("arrive_provider_errors_total", provider="t-open", reason="breaker_open") == (
        refused + 15
    )


def test_an_outage_costs_only_the_half_open_probes_and_recovery_takes_one_interval() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("t-outage", clock, default=Step(seconds=200.0, latency_s=0.02))
    settings = BreakerSettings(failures=5, half_open_after_s=5.0)
    guarded = GuardedProvider(vendor, clock, breaker=settings, rng=random.Random(1))
    answers: list[tuple[float, str]] = []

    async def caller() -> None:  # 50 calls a second for 100 s
        for _ in range(5_000):
            started = clock.monotonic()
            answers.append((started, await outcome(guarded, timeout_s=0.3)))
            await asyncio.sleep(max(0.0, started + 0.02 - clock.monotonic()))

    async def vendor_down_from_20_to_80_s() -> None:
        await asyncio.sleep(20.0)
        vendor.default = Step(error="connection", latency_s=0.02)
        await asyncio.sleep(60.0)
        vendor.default = Step(seconds=200.0, latency_s=0.02)

    async def scenario() -> None:
        await asyncio.gather(caller(), vendor_down_from_20_to_80_s())

    run_virtual(scenario(), clock)
    during = [t for t in vendor.requests if 20.0 <= t < 80.0]
    # 5 failures open it, then one probe per half-open interval
    assert len(during) <= 5 + 60 / 5.0
    first_failure = min(t for t, what in answers if what != "t-outage")
    first_refusal = min(t for t, what in answers if what == "breaker_open")
    assert first_refusal - first_failure < 1.0
    recovered = min(t for t, what in answers if t >= 80.0 and what == "t-outage")
    assert recovered - 80.0 <= 5.0 + 0.05
    assert all(what == "t-outage" for t, what in answers if t >= recovered)


def test_under_concurrent_load_only_the_probes_reach_a_vendor_whose_breaker_opened() -> None:
    """40 callers at once, hedging on: no request (hedge, late task) leaves while the
    breaker is open, and at most one probe an interval while half-open."""
    clock = ManualClock()
    vendor = ScriptedProvider("t-crowd", clock, default=Step(seconds=200.0, latency_s=0.01))
    settings = BreakerSettings(failures=5, half_open_after_s=1.0)
    hedge = HedgeSettings(min_samples=50, budget_reserve=1000.0, budget_ratio=1.0)
    guarded = GuardedProvider(vendor, clock, breaker=settings, hedge=hedge, rng=random.Random(2))
    opened: list[float] = []
    counters = ("arrive_provider_probes_total", "arrive_provider_calls_not_closed_total")

    async def caller(offset_s: float) -> None:  # 40 callers, 200 calls a second each, 20 s
        await asyncio.sleep(offset_s)  # not in lockstep
        for _ in range(4_000):
            started = clock.monotonic()
            await outcome(guarded, timeout_s=0.3)
            await asyncio.sleep(max(0.0, started + 0.005 - clock.monotonic()))

    async def watch_the_breaker() -> None:  # every 1 ms: when it first left closed
        while not opened:
            if guarded.breaker.state is not BreakerState.CLOSED:
                opened.append(clock.monotonic())
            await asyncio.sleep(0.001)

    async def vendor_slow_to_fail_from_5_to_15_s() -> dict[str, float]:
        await asyncio.sleep(5.0)
        before = {name: sample(name, provider="t-crowd") for name in counters}
        vendor.default = Step(error="http_5xx", latency_s=0.05)  # past the p95: hedged
        vendor.script(*[Step(error="http_5xx", latency_s=0.012)] * 10)  # these open it
        await asyncio.sleep(10.0)
        vendor.default = Step(seconds=200.0, latency_s=0.01)
        return {name: sample(name, provider="t-crowd") - before[name] for name in counters}

    async def scenario() -> dict[str, float]:
        *_, counted = await asyncio.gather(*(caller(i * 0.00013) for i in range(40)),
                                           watch_the_breaker(),
                                           vendor_slow_to_fail_from_5_to_15_s())  # fmt: skip
        return counted

    counted = run_virtual(scenario(), clock)
    probes, not_closed = counted["arrive_provider_probes_total"], counted[counters[1]]
    after_opening = [t for t in vendor.requests if opened[0] + 0.001 <= t < 15.0]
    assert 1 <= probes <= 10  # one a 1 s interval
    assert not_closed == probes
    assert len(after_opening) <= probes  # before the fix: 9 hedges sent while open too


def test_the_retry_budget_caps_retries_to_a_few_percent_of_calls() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("t-budget", clock, default=Step(error="http_5xx"))
    never_opens = BreakerSettings(failures=10**6, min_calls=10**6)
    retry = RetrySettings(attempts=3, budget_ratio=0.05, budget_reserve=5.0)
    guarded = GuardedProvider(vendor, clock, breaker=never_opens, retry=retry, hedge=NO_HEDGE)
    before = sample("arrive_provider_retries_total", provider="t-budget")

    async def scenario() -> None:
        for _ in range(1000):
            await outcome(guarded, timeout_s=5.0)

    run_virtual(scenario(), clock)
    retries = len(vendor.requests) - 1000
    assert 0 < retries <= 5 + 0.05 * 1000
    assert sample("arrive_provider_retries_total", provider="t-budget") - before == retries


def test_a_failure_is_retried_after_a_jittered_backoff() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("t-retry", clock)
    vendor.script(Step(error="http_5xx"), Step(error="connection"))
    guarded = GuardedProvider(vendor, clock, hedge=NO_HEDGE, rng=random.Random(3))

    assert run_virtual(outcome(guarded), clock) == "t-retry"
    first, second, third = vendor.requests
    assert 0 <= second - first <= 0.02
    assert 0 <= third - second <= 0.04


@pytest.mark.parametrize("reason", ["http_4xx", "garbage", "absurd"])
def test_a_failure_the_vendor_would_repeat_is_not_retried(reason: str) -> None:
    clock = ManualClock()
    vendor = ScriptedProvider(f"t-{reason}", clock, default=Step(error=reason))
    guarded = GuardedProvider(vendor, clock, hedge=NO_HEDGE)
    assert run_virtual(outcome(guarded), clock) == reason
    assert len(vendor.requests) == 1


def test_retry_after_is_honoured_by_every_caller() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("t-429", clock)
    vendor.script(Step(error="rate_limited", retry_after_s=2.0))
    guarded = GuardedProvider(vendor, clock, hedge=NO_HEDGE)

    async def scenario() -> tuple[str, str]:
        patient = asyncio.ensure_future(outcome(guarded, timeout_s=5.0))
        await asyncio.sleep(0.5)
        hurried = await outcome(guarded, timeout_s=1.0)  # its deadline ends before 2 s
        return await patient, hurried

    assert run_virtual(scenario(), clock) == ("t-429", "rate_limited")
    assert vendor.requests == [0.0, 2.0]  # nothing was sent inside the Retry-After


def test_a_slow_request_is_hedged_after_the_observed_p95() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("t-hedge", clock, default=Step(seconds=100.0, latency_s=0.01))
    rng = random.Random(7)
    vendor.script(*(Step(seconds=100.0, latency_s=rng.uniform(0.005, 0.015)) for _ in range(100)))
    hedge = HedgeSettings(min_samples=50, budget_reserve=10.0)
    guarded = GuardedProvider(vendor, clock, retry=NO_RETRY, hedge=hedge)

    async def scenario() -> tuple[float, float]:
        for _ in range(100):
            await guarded.travel_time(LEG, timeout_s=1.0)
        vendor.script(Step(seconds=100.0, latency_s=0.5))  # the next request is slow
        before = sample("arrive_provider_hedges_total", provider="t-hedge")
        started = clock.monotonic()
        await guarded.travel_time(LEG, timeout_s=1.0)
        hedges = sample("arrive_provider_hedges_total", provider="t-hedge") - before
        return clock.monotonic() - started, hedges

    took, hedges = run_virtual(scenario(), clock)
    p95 = guarded.latency.value()
    assert p95 is not None
    assert took == pytest.approx(p95 + 0.01)  # p95, then the hedge's 10 ms
    assert hedges == 1
    assert vendor.in_flight == 0  # the slow request was cancelled


def test_hedges_stay_within_their_budget() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("t-hedges", clock, default=Step(seconds=100.0, latency_s=0.01))
    hedge = HedgeSettings(min_samples=50, budget_ratio=0.05, budget_reserve=2.0)
    guarded = GuardedProvider(vendor, clock, retry=NO_RETRY, hedge=hedge)

    async def scenario() -> None:
        for _ in range(100):
            await guarded.travel_time(LEG, timeout_s=1.0)
        vendor.default = Step(seconds=100.0, latency_s=0.05)  # every request now slow
        for _ in range(400):
            await guarded.travel_time(LEG, timeout_s=1.0)

    run_virtual(scenario(), clock)
    hedges = len(vendor.requests) - 500
    assert 0 < hedges <= 2 + 0.05 * 500


def test_close_closes_the_vendor() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("t-close", clock)
    asyncio.run(GuardedProvider(vendor, clock).close())
    assert vendor.closed


def test_a_weather_provider_is_guarded_the_same_way() -> None:
    clock = ManualClock()
    vendor = ScriptedProvider("w-vendor", clock, default=Step(temperature_c=21.5))
    vendor.script(Step(error="http_5xx"))
    guarded = GuardedWeather(vendor, clock, breaker=BreakerSettings(failures=2), hedge=NO_HEDGE)

    async def scenario() -> list[object]:
        first = await guarded.current(37.7, -122.4, timeout_s=1.0)  # retried once
        vendor.default = Step(error="connection")
        seen: list[object] = [(first.temperature_c, first.source)]
        for _ in range(3):
            try:
                await guarded.current(37.7, -122.4, timeout_s=1.0)
            except ProviderError as exc:
                seen.append(exc.reason)
        return seen

    assert run_virtual(scenario(), clock) == [
        (21.5, "w-vendor"),
        "connection",
        "breaker_open",
        "breaker_open",
    ]
    assert isinstance(guarded, WeatherProvider)
    assert isinstance(GuardedProvider(vendor, clock), TravelTimeProvider)
