"""The circuit breaker's states on a manual clock."""

from __future__ import annotations

import pytest

from arrive.clock import ManualClock
from arrive.errors import ConfigError
from arrive.providers.breaker import BreakerSettings, BreakerState, CircuitBreaker


def breaker(clock: ManualClock, **settings: float) -> tuple[CircuitBreaker, list[BreakerState]]:
    changes: list[BreakerState] = []
    return CircuitBreaker(BreakerSettings(**settings), clock, changes.append), changes  # type: ignore[arg-type]


def test_opens_after_n_consecutive_failures_and_refuses() -> None:
    b, changes = breaker(ManualClock(), failures=3)
    for _ in range(2):
        assert b.allow()
        b.failed()
    assert b.state is BreakerState.CLOSED
    assert b.allow()
    b.failed()
    assert b.state is BreakerState.OPEN
    assert changes == [BreakerState.OPEN]
    assert not b.allow()


def test_a_success_resets_the_consecutive_count() -> None:
    b, _ = breaker(ManualClock(), failures=3, min_calls=100)
    for _ in range(10):
        b.failed()
        b.failed()
        b.succeeded()
    assert b.state is BreakerState.CLOSED


def test_opens_on_the_failure_rate_over_the_window() -> None:
    clock = ManualClock()
    b, _ = breaker(clock, failures=100, failure_rate=0.5, min_calls=10, window_s=10.0)
    for _ in range(5):  # alternate: never 2 failures in a row, half of the calls fail
        b.succeeded()
        clock.advance(0.1)
        assert b.state is BreakerState.CLOSED
        b.failed()
        clock.advance(0.1)
    assert b.state is BreakerState.OPEN


def test_old_calls_leave_the_window() -> None:
    clock = ManualClock()
    b, _ = breaker(clock, failures=100, failure_rate=0.5, min_calls=10, window_s=1.0)
    for _ in range(5):
        b.failed()
        b.succeeded()
        clock.advance(1.0)  # each pair alone in the window: never min_calls
    assert b.state is BreakerState.CLOSED


def test_half_open_lets_one_probe_at_a_time_and_closes_on_its_success() -> None:
    clock = ManualClock()
    b, changes = breaker(clock, failures=1, half_open_after_s=5.0)
    b.failed()
    clock.advance(4.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()
    assert not b.allow()  # the probe is in flight
    b.succeeded()
    assert b.state is BreakerState.CLOSED
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_probe_opens_for_another_interval() -> None:
    clock = ManualClock()
    b, _ = breaker(clock, failures=1, half_open_after_s=5.0)
    b.failed()
    clock.advance(5.0)
    assert b.allow()
    b.failed()
    assert b.state is BreakerState.OPEN
    clock.advance(4.0)
    assert not b.allow()
    clock.advance(1.0)
    assert b.allow()


def test_an_abandoned_probe_opens_for_another_interval_not_a_second_probe() -> None:
    clock = ManualClock()
    b, _ = breaker(clock, failures=1, half_open_after_s=5.0)
    b.failed()
    clock.advance(5.0)
    probe = b.allow()
    assert probe is not None
    assert probe.probe
    b.abandoned(probe)
    assert b.state is BreakerState.OPEN
    assert not b.allow()  # one probe per interval
    clock.advance(5.0)
    assert b.allow()


def test_a_call_let_through_before_the_breaker_opened_says_nothing_after() -> None:
    clock = ManualClock()
    b, _ = breaker(clock, failures=1, half_open_after_s=1.0)
    early = b.allow()
    assert early is not None
    b.failed()  # another call's failure opens it
    assert b.outdated(early)
    clock.advance(1.0)
    probe = b.allow()
    assert probe is not None
    assert probe.probe
    b.succeeded(early)  # the early call answers while half-open: not the probe
    b.abandoned(early)
    b.failed(early)
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow()  # the probe's slot is still taken
    b.succeeded(probe)
    assert b.state is BreakerState.CLOSED
    b.failed(early)  # nor does it count once closed again
    assert b.allow() is not None
    assert b.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("field", "value"), [("failures", 0), ("failure_rate", 1.5), ("half_open_after_s", 0.0)]
)
def test_bad_settings_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"breaker.{field}"):
        BreakerSettings(**{field: value})  # type: ignore[arg-type]
