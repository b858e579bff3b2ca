"""The rollout state machine, on its own: evidence gates, pause, final states."""

from __future__ import annotations

from datetime import timedelta

import pytest

from arrive.errors import RolloutRefused
from arrive.rollout import transitions
from arrive.rollout.plan import RolloutPlan
from arrive.rollout.state import Rollout
from arrive.testing.registry_contract import START
from arrive.testing.rollout_contract import FakeVerdict

PLAN = RolloutPlan(shadow_minutes=60, steps=(5.0, 100.0), min_orders=500, min_minutes=30)


def _start(plan: RolloutPlan = PLAN) -> Rollout:
    return transitions.start(
        rollout_id="2-1", candidate="2", control="1", plan=plan, actor="ana", now=START
    ).rollout


def test_starts_in_shadow_or_at_the_first_step_without_one() -> None:
    assert _start().label == "shadow"
    assert _start().share == 0.0
    no_shadow = _start(RolloutPlan(shadow_minutes=0, steps=(5.0, 100.0)))
    assert (no_shadow.label, no_shadow.share) == ("canary 5 %", 0.05)


@pytest.mark.parametrize(
    ("minutes", "orders", "advances"),
    [(59, 10_000, False), (60, 499, False), (60, 500, True), (600, 500, True)],
)
def test_a_pass_advances_only_with_the_minimum_time_and_orders(
    minutes: float, orders: int, advances: bool
) -> None:
    moved = transitions.apply(
        _start(), FakeVerdict("pass"), orders=orders, now=START + timedelta(minutes=minutes)
    )
    assert (moved is not None) == advances
    if moved is not None:
        assert (moved.rollout.label, moved.rollout.revision, moved.promotes) == (
            "canary 5 %",
            2,
            False,
        )


def test_each_step_waits_its_own_minimum_time() -> None:
    at_5 = transitions.apply(
        _start(), FakeVerdict("pass"), orders=500, now=START + timedelta(minutes=60)
    )
    assert at_5 is not None
    early = START + timedelta(minutes=89)
    assert transitions.apply(at_5.rollout, FakeVerdict("pass"), orders=500, now=early) is None
    on_time = START + timedelta(minutes=90)
    last = transitions.apply(at_5.rollout, FakeVerdict("pass"), orders=500, now=on_time)
    assert last is not None
    assert last.rollout.label == "canary 100 %"


def test_a_pass_at_the_last_step_promotes() -> None:
    rollout = _start(RolloutPlan(shadow_minutes=0, steps=(100.0,), min_orders=1, min_minutes=0))
    done = transitions.apply(rollout, FakeVerdict("pass", "ok"), orders=1, now=START)
    assert done is not None
    assert done.promotes
    assert (done.rollout.phase, done.rollout.share, done.rollout.traffic()) == ("done", 1.0, None)


def test_hold_changes_nothing() -> None:
    late = START + timedelta(days=1)
    assert transitions.apply(_start(), FakeVerdict("hold"), orders=10**6, now=late) is None


def test_a_paused_rollout_never_advances_but_still_rolls_back() -> None:
    late = START + timedelta(days=1)
    paused = transitions.pause(_start(), actor="ana", reason="look", now=START).rollout
    assert paused.label == "paused (shadow)"
    assert transitions.apply(paused, FakeVerdict("pass"), orders=10**6, now=late) is None
    breach = transitions.apply(paused, FakeVerdict("breach", "late rate"), orders=9, now=late)
    assert breach is not None
    assert breach.rollout.phase == "rolled_back"
    assert not breach.promotes
    resumed = transitions.resume(paused, actor="ana", reason="go", now=START).rollout
    assert transitions.apply(resumed, FakeVerdict("pass"), orders=500, now=late) is not None


@pytest.mark.parametrize("final", ["abort", "promote", "breach"])
def test_final_states_refuse_every_command_and_ignore_verdicts(final: str) -> None:
    rollout = _start()
    if final == "breach":
        moved = transitions.apply(rollout, FakeVerdict("breach"), orders=0, now=START)
        assert moved is not None
        ended = moved.rollout
    else:
        ended = getattr(transitions, final)(rollout, actor="a", reason="r", now=START).rollout
    assert not ended.active
    assert ended.traffic() is None
    for command in (transitions.pause, transitions.resume, transitions.abort, transitions.promote):
        with pytest.raises(RolloutRefused, match=f"rollout 2-1 is {ended.phase}"):
            command(ended, actor="a", reason="r", now=START)
    assert transitions.apply(ended, FakeVerdict("pass"), orders=10**6, now=START) is None


def test_pause_twice_and_resume_unpaused_are_refused() -> None:
    rollout = _start()
    with pytest.raises(RolloutRefused, match="is not paused"):
        transitions.resume(rollout, actor="a", reason="r", now=START)
    paused = transitions.pause(rollout, actor="a", reason="r", now=START).rollout
    with pytest.raises(RolloutRefused, match="already paused"):
        transitions.pause(paused, actor="a", reason="r", now=START)


def test_traffic_is_what_a_worker_needs() -> None:
    rollout = _start(RolloutPlan(shadow_minutes=0, steps=(25.0, 100.0), unit="store"))
    traffic = rollout.traffic()
    assert traffic is not None
    assert (traffic.control, traffic.candidate, traffic.share, traffic.unit) == (
        "1",
        "2",
        0.25,
        "store",
    )
    assert traffic.salt == bytes.fromhex(rollout.salt)
    assert len(traffic.salt) == 16
    assert not traffic.shadow
