"""The monitor judges the registry's rollout on joined outcomes and moves it.

Traffic is generated, not served: every order goes to control (version 1) or candidate
(version 2) half and half, each with its own prediction error; the monitor's clock
follows the prediction log's event time, as it does live.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from arrive.clock import ManualClock
from arrive.errors import InternalError
from arrive.monitoring.monitor import Monitor
from arrive.monitoring.monitor_rollout import RolloutSettings, RolloutWatch, Seen
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.registry import InMemoryRegistry
from arrive.rollout.control import Rollouts
from arrive.rollout.guardrails import Guardrails
from arrive.rollout.plan import RolloutPlan
from arrive.testing.registry_contract import model_files, model_metadata
from arrive.testing.rollout_contract import no_check

PLAN = RolloutPlan(shadow_minutes=0, steps=(50.0, 100.0), min_orders=200, min_minutes=5)
RAILS = Guardrails(
    min_orders=200,
    tuned_orders=500,
    mae_margin=0.25,
    late_margin=0.1,
    coverage_margin=0.1,
    cancel_limit=0.1,
)
"""Wide margins: a pass within the issue's (5 % MAE, 1 pp cancellations) takes thousands
of orders; these tests are about the wiring, tests/rollout about the statistics."""
NOISE_S = 120.0
Z_90 = 1.2815515655446004
BURST = 10
"""Orders answered at the same instant (one log batch)."""
CANCELLED = 0.05
"""Share of orders cancelled instead of delivered."""


def _traffic(
    kit: ModuleType, log_dir: Path, minutes: int, worse: float, seed: int, share: float = 0.5
) -> list[object]:
    """One log file a minute, 4 bursts of :data:`BURST` orders each; their events."""
    rng = random.Random(seed)
    events: list[object] = []
    for minute in range(minutes):
        log = PredictionLog(log_dir, ManualClock(kit.T0 + timedelta(minutes=minute)))
        for burst in range(4):
            at_s = minute * 60 + burst * 15
            ids, versions, p50s, p90s = [], [], [], []
            for index in range(BURST):
                order = f"o{minute:03d}{burst}{index}"
                candidate = rng.random() < share
                sigma = NOISE_S * (1 + worse) if candidate else NOISE_S
                duration = rng.uniform(300, 900)
                p50 = duration + rng.gauss(0, sigma)
                ids.append(order)
                versions.append("2" if candidate else "1")
                p50s.append(p50)
                p90s.append(p50 + Z_90 * sigma)
                gone = rng.random() < CANCELLED
                outcome = kit.cancelled(order, at_s + 120) if gone else None
                done = outcome or kit.delivered(order, at_s + duration)
                events += [kit.created(order, at_s), done]
            log.extend(
                Predictions(
                    [f"r-{o}" for o in ids],
                    ids,
                    kit.T0 + timedelta(seconds=at_s),
                    ["candidate" if v == "2" else "control" for v in versions],
                    versions,
                    [None] * BURST,
                    p50s,
                    p90s,
                    [None] * BURST,
                )
            )
        log.close()
    return events


@pytest.fixture
def clock(kit: ModuleType) -> ManualClock:
    """The clock of the commands (``arrive rollout ...``)."""
    return ManualClock(kit.T0)


@pytest.fixture
def rollouts(clock: ManualClock) -> Rollouts:
    registry = InMemoryRegistry(clock=clock)
    for tag in "ab":
        registry.register(model_files(tag), model_metadata())
    registry.set_alias("production", "1", reason="first")
    return Rollouts(registry, clock=clock, verify=no_check)


def _monitor(
    kit: ModuleType,
    make_monitor: Callable[..., Monitor],
    rollouts: Rollouts,
    events: list[object],
) -> Monitor:
    monitor = make_monitor(kit.stream_of(events), batch_size=200, files_per_step=1)
    # the monitor's own Rollouts over the same registry and store, on the monitor's clock
    mine = Rollouts(rollouts.registry, store=rollouts.store, clock=monitor.clock, verify=no_check)
    monitor.rollout = RolloutWatch(mine, monitor.clock, RolloutSettings(60.0, RAILS))
    return monitor


Look = tuple[str, str, str | None, float]
"""An evaluation: the rollout's label after it, the verdict, the decision, candidate orders."""


def _run(monitor: Monitor, steps: int = 2000) -> list[Look]:
    """Step the monitor, its clock at the log's event time; every evaluation of an
    active rollout."""
    assert monitor.rollout is not None
    assert isinstance(monitor.clock, ManualClock)
    seen: list[Look] = []
    evaluate = monitor.rollout.evaluate

    def recorded(open_rows: pl.DataFrame) -> Seen:
        found = evaluate(open_rows)
        if found.rollout is not None and found.verdict is not None:
            verdict = found.verdict
            orders = verdict.figures["orders_candidate"]
            seen.append((found.rollout.label, verdict.action, found.decision, orders))
        return found

    monitor.rollout.evaluate = recorded  # type: ignore[method-assign]
    for _ in range(steps):
        handled = monitor.step()
        latest = monitor.join.state.predictions_seen
        if latest is not None and latest > monitor.clock.now():
            monitor.clock.set(latest)
        if not handled and monitor.source.exhausted and not monitor.backlog():
            break
    return seen


def test_a_candidate_30_percent_worse_is_rolled_back_at_the_first_breach(
    kit: ModuleType, make_monitor: Callable[..., Monitor], rollouts: Rollouts, tmp_path: Path
) -> None:
    events = _traffic(kit, tmp_path / "log", minutes=30, worse=0.3, seed=1)
    rollouts.start("2", PLAN, actor="ana")
    monitor = _monitor(kit, make_monitor, rollouts, events)

    seen = _run(monitor)

    assert [look[2] for look in seen if look[2]] == ["rolled_back"]
    # held on the minimum sample, then (perhaps) undecided; rolled back at the first breach
    breach = next(i for i, look in enumerate(seen) if look[1] == "breach")
    assert seen[breach][2] == "rolled_back"
    assert all(look[1] == "hold" for look in seen[:breach])
    assert seen[0][3] < RAILS.min_orders <= seen[breach][3]
    rolled = rollouts.status()
    assert rolled is not None
    assert rolled.phase == "rolled_back"
    entry = rollouts.audit()[-1]
    assert entry.actor == "guardrails"
    assert entry.target == "rolled_back"
    assert "p50_mae" in entry.reason
    assert entry.figures["orders_candidate"] >= RAILS.min_orders
    assert entry.figures["p50_mae_rel"] > 0.1
    text = _scrape(monitor)
    assert 'arrive_rollout_decisions_total{decision="rolled_back",rollout="2-1"} 1.0' in text


def test_an_equal_candidate_advances_step_by_step_to_production(
    kit: ModuleType, make_monitor: Callable[..., Monitor], rollouts: Rollouts, tmp_path: Path
) -> None:
    events = _traffic(kit, tmp_path / "log", minutes=60, worse=0.0, seed=2)
    rollouts.start("2", PLAN, actor="ana")
    monitor = _monitor(kit, make_monitor, rollouts, events)

    seen = _run(monitor)

    assert [look[2] for look in seen if look[2]] == ["advanced", "promoted"]
    assert rollouts.registry.get("production").version == "2"
    steps = [e for e in rollouts.audit() if e.actor == "guardrails"]
    assert [(e.source, e.target) for e in steps] == [
        ("canary 50 %", "canary 100 %"),
        ("canary 100 %", "done"),
    ]
    for entry in steps:
        assert entry.figures["orders"] >= PLAN.min_orders
        assert "cancel_rate" in entry.reason  # the join's cancelled rows reach the rail
        assert 0 < entry.figures["cancel_rate_control"] < 0.15
    gap = steps[1].at - steps[0].at
    assert gap >= timedelta(minutes=PLAN.min_minutes)


def test_a_paused_rollout_holds_however_good_the_evidence(
    kit: ModuleType, make_monitor: Callable[..., Monitor], rollouts: Rollouts, tmp_path: Path
) -> None:
    events = _traffic(kit, tmp_path / "log", minutes=30, worse=0.0, seed=2)
    rollouts.start("2", PLAN, actor="ana")
    rollouts.pause(actor="ana")
    monitor = _monitor(kit, make_monitor, rollouts, events)

    seen = _run(monitor)

    assert {look[0] for look in seen} == {"paused (canary 50 %)"}
    assert "pass" in {look[1] for look in seen}  # the evidence was there
    assert not [look[2] for look in seen if look[2]]
    text = _scrape(monitor)
    assert 'arrive_rollout_paused{rollout="2-1"} 1.0' in text
    assert 'arrive_rollout_share{rollout="2-1"} 0.5' in text


def _scrape(monitor: Monitor) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    assert monitor.rollout is not None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(monitor.rollout.metrics)
    return generate_latest(registry).decode()


def test_without_evidence_of_the_candidate_the_rollout_holds_and_says_so(
    kit: ModuleType,
    make_monitor: Callable[..., Monitor],
    rollouts: Rollouts,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    started = rollouts.start("2", PLAN, actor="ana")
    clock.advance(3 * 3600)
    assert rollouts.status() == started  # the monitor down: time alone moves nothing
    events = _traffic(kit, tmp_path / "log", minutes=20, worse=0.0, seed=3, share=0.0)
    monitor = _monitor(kit, make_monitor, rollouts, events)

    seen = _run(monitor)

    assert len(seen) >= 15
    assert {look[:3] for look in seen} == {("canary 50 %", "hold", None)}
    assert rollouts.status() == started
    text = _scrape(monitor)
    assert f'arrive_rollout_idle_intervals{{rollout="2-1"}} {len(seen)}.0' in text
    assert 'arrive_rollout_guardrail{rail="orders_control",rollout="2-1"}' in text


def test_a_restarted_monitor_keeps_the_rows_of_the_phase_it_held(
    kit: ModuleType, make_monitor: Callable[..., Monitor], rollouts: Rollouts, tmp_path: Path
) -> None:
    events = _traffic(kit, tmp_path / "log", minutes=15, worse=0.0, seed=4)
    rollouts.start("2", PLAN, actor="ana")
    rollouts.pause(actor="ana")
    first = _monitor(kit, make_monitor, rollouts, events)
    _run(first)
    first.finish()  # every window closed: the rows move from the join to the watch
    assert first.rollout is not None
    held = first.rollout.rows
    assert held.height > 0

    second = _monitor(kit, make_monitor, rollouts, events)  # resumed from the checkpoint
    assert second.rollout is not None
    assert second.rollout.rows.is_empty()  # the watch is attached after resume: reload
    second.resume()
    assert second.rollout.rows.equals(held)


def test_a_registry_that_refuses_changes_leaves_the_rollout_as_it_was_and_the_monitor_running(
    kit: ModuleType, make_monitor: Callable[..., Monitor], rollouts: Rollouts, tmp_path: Path
) -> None:
    events = _traffic(kit, tmp_path / "log", minutes=30, worse=0.3, seed=1)
    started = rollouts.start("2", PLAN, actor="ana")
    monitor = _monitor(kit, make_monitor, rollouts, events)
    assert monitor.rollout is not None

    def refuse(*args: object, **kwargs: object) -> None:
        raise InternalError("registry r: cannot change the rollout (Read-only file system)")

    monitor.rollout.rollouts.store.commit = refuse  # type: ignore[method-assign]
    seen = _run(monitor)

    assert "breach" in {look[1] for look in seen}  # judged, not applied
    assert not [look[2] for look in seen if look[2]]
    assert rollouts.status() == started
