"""The simulated vendor's faults: the draw, the rate limiter (on a manual clock), the
admin endpoint's refusals and counters, and its clock mapping."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from arrive.clock import ManualClock
from arrive.errors import ConfigError, InternalError
from arrive.testing.provider_contract import ask_travel, leg, simulated_travel
from arrive.testing.servers.vendor_sim import VendorProcess
from arrive.testing.vendor.faults import FaultPlan, Faults
from arrive.testing.vendor.market import SimulatedMarket


def test_faults_are_drawn_at_their_rates() -> None:
    plan = FaultPlan(Faults().updated({"error_rate": 0.3, "garbage_rate": 0.2}), ManualClock(), 1)
    drawn = Counter(plan.draw() for _ in range(4000))
    assert 0.27 < drawn["error"] / 4000 < 0.33
    assert 0.17 < drawn["garbage"] / 4000 < 0.23
    assert 0.47 < drawn[None] / 4000 < 0.53


def test_the_rate_limit_refills_with_time() -> None:
    clock = ManualClock()
    plan = FaultPlan(Faults().updated({"rate_limit_per_s": 2}), clock, 0)
    assert [plan.retry_after_s() for _ in range(2)] == [None, None]  # a second's burst
    assert plan.retry_after_s() == pytest.approx(0.5)
    clock.advance(0.5)
    assert plan.retry_after_s() is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"error_rate": 1.5}, "error_rate: a rate is in [0, 1]"),
        ({"error_rate": 0.6, "timeout_rate": 0.6}, "rates: the fault rates sum to 1.2"),
        ({"outage": 1}, "outage: unknown fault"),
        ({"latency_ms": -5}, "latency_ms: must be a number"),
    ],
)
def test_bad_fault_settings_are_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        Faults().updated(changes)


def test_the_admin_endpoint_refuses_and_counts(vendor: VendorProcess) -> None:
    vendor.clear_faults()
    with pytest.raises(InternalError, match="unknown fault"):
        vendor.set_faults(outage=1.0)
    before = vendor.stats()
    vendor.set_faults(error_rate=1.0)
    ask_travel(simulated_travel(vendor)["osrm_route"], leg())
    vendor.clear_faults()
    after = vendor.stats()
    assert after["requests"]["route"] == before["requests"].get("route", 0) + 1
    assert after["outcomes"]["error"] == before["outcomes"].get("error", 0) + 1


def test_a_time_outside_the_simulation_keeps_its_time_of_day(sim_data_dir: Path) -> None:
    market = SimulatedMarket(sim_data_dir)
    inside = market.start + timedelta(hours=30)
    assert market.sim_seconds(inside) == 30 * 3600.0
    later = market.start + timedelta(days=40, hours=8, minutes=30)  # a 2-day simulation
    assert market.sim_seconds(later) % 86_400 == 8.5 * 3600
