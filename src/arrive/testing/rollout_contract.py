"""Conformance suite for :class:`~arrive.rollout.store.RolloutStore` backends.

Every backend passes it unchanged. Provide a ``rollout_registry`` fixture returning a
fresh registry (with its clock) whose :func:`~arrive.rollout.store.rollout_store` is
the backend under test, and subclass :class:`RolloutStoreContract`::

    @pytest.fixture(params=["memory", "local"])
    def rollout_registry(request, tmp_path, clock):
        if request.param == "memory":
            return InMemoryRegistry(clock=clock)
        return LocalRegistry(tmp_path, clock=clock)

    class TestRolloutStore(RolloutStoreContract):
        pass
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import pytest

from arrive.clock import ManualClock
from arrive.errors import RolloutConflict, RolloutRefused
from arrive.registry.base import ModelRegistry
from arrive.rollout import transitions
from arrive.rollout.control import Rollouts
from arrive.rollout.plan import RolloutPlan
from arrive.rollout.store import rollout_store
from arrive.testing.registry_contract import START, model_files, model_metadata

PLAN = RolloutPlan(shadow_minutes=10, steps=(5.0, 50.0, 100.0), min_orders=100, min_minutes=5)


@dataclass(frozen=True)
class FakeVerdict:
    """A guardrail verdict as the monitor hands it over."""

    action: Literal["hold", "pass", "breach"]
    reason: str = "guardrails"
    figures: dict[str, float] = field(default_factory=dict)


def no_check(registry: ModelRegistry, version: str) -> None:
    """A verifier that passes every version (the model check has its own tests)."""


class RolloutStoreContract:
    """The tests every rollout store passes (needs a ``rollout_registry`` fixture)."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(START)

    @pytest.fixture
    def rollouts(self, rollout_registry: ModelRegistry, clock: ManualClock) -> Rollouts:
        for tag in "ab":
            rollout_registry.register(model_files(tag), model_metadata())
        rollout_registry.set_alias("production", "1", reason="first")
        return Rollouts(rollout_registry, clock=clock, verify=no_check)

    def test_nothing_stored_at_first(self, rollouts: Rollouts) -> None:
        assert rollouts.store.read() is None
        assert rollouts.store.current() is None
        assert rollouts.store.audit() == []

    def test_start_is_stored_and_seen_by_another_handle(self, rollouts: Rollouts) -> None:
        started = rollouts.start("2", PLAN, actor="ana")
        other = rollout_store(rollouts.registry)
        assert other.read() == started
        assert (started.candidate, started.control, started.phase) == ("2", "1", "shadow")
        [entry] = other.audit()
        assert (entry.source, entry.target, entry.actor) == ("-", "shadow", "ana")
        assert entry.revision == 1

    def test_a_commit_from_a_stale_read_is_refused_and_changes_nothing(
        self, rollouts: Rollouts, clock: ManualClock
    ) -> None:
        before = rollouts.start("2", PLAN, actor="ana")
        paused = transitions.pause(before, actor="ana", reason="look", now=clock.now())
        aborted = transitions.abort(before, actor="bo", reason="stop", now=clock.now())
        rollouts.store.commit(paused, expected=(before.id, before.revision))
        with pytest.raises(RolloutConflict, match="changed while this command ran"):
            rollouts.store.commit(aborted, expected=(before.id, before.revision))
        assert rollouts.store.read() == paused.rollout
        assert [e.target for e in rollouts.store.audit()] == ["shadow", "paused (shadow)"]

    def test_racing_commands_one_wins_the_others_are_told(self, rollouts: Rollouts) -> None:
        rollouts.start("2", PLAN, actor="ana")
        barrier = threading.Barrier(6)
        outcomes: list[str] = []

        def race(actor: str) -> None:
            racer = Rollouts(rollouts.registry, store=rollout_store(rollouts.registry))
            before = racer.store.read()
            assert before is not None
            moved = transitions.abort(before, actor=actor, reason="race", now=START)
            barrier.wait()
            try:
                racer.store.commit(moved, expected=(before.id, before.revision))
                outcomes.append("won")
            except RolloutConflict:
                outcomes.append("told")

        threads = [threading.Thread(target=race, args=(f"u{i}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["told"] * 5 + ["won"]
        assert len(rollouts.store.audit()) == 2

    def test_a_failing_effect_changes_nothing(self, rollouts: Rollouts, clock: ManualClock) -> None:
        before = rollouts.start("2", PLAN, actor="ana")
        done = transitions.promote(before, actor="ana", reason="now", now=clock.now())

        def fail() -> None:
            raise RolloutRefused("effect failed")

        with pytest.raises(RolloutRefused, match="effect failed"):
            rollouts.store.commit(done, expected=(before.id, before.revision), effect=fail)
        assert rollouts.store.read() == before
        assert len(rollouts.store.audit()) == 1

    def test_passing_guardrails_ramp_to_production_keeping_the_previous(
        self, rollouts: Rollouts, clock: ManualClock
    ) -> None:
        rollouts.start("2", PLAN, actor="ana")
        seen = []
        for _ in range(4):  # shadow, 5 %, 50 %, 100 %
            clock.advance(timedelta(minutes=10).total_seconds())
            moved = rollouts.apply(FakeVerdict("pass", "all within bounds"), orders=100)
            assert moved is not None
            seen.append(moved.rollout.label)
        assert seen == ["canary 5 %", "canary 50 %", "canary 100 %", "done"]
        assert rollouts.registry.get("production").version == "2"
        assert rollouts.registry.rollback("production").version == "1"

    def test_a_breach_rolls_back_with_its_figures(
        self, rollouts: Rollouts, clock: ManualClock
    ) -> None:
        rollouts.start("2", PLAN, actor="ana")
        clock.advance(600)
        rollouts.apply(FakeVerdict("pass"), orders=100)
        verdict = FakeVerdict("breach", "P50 MAE +12 % (bound +5 %)", {"mae_rel": 0.12})
        moved = rollouts.apply(verdict, orders=340)
        assert moved is not None
        assert moved.rollout.phase == "rolled_back"
        assert rollouts.registry.get("production").version == "1"
        last = rollouts.store.audit()[-1]
        assert (last.source, last.target, last.actor) == ("canary 5 %", "rolled_back", "guardrails")
        assert last.figures == {"mae_rel": 0.12, "orders": 340.0}
        assert last.reason == "P50 MAE +12 % (bound +5 %)"

    def test_the_audit_log_keeps_every_rollout(self, rollouts: Rollouts) -> None:
        first = rollouts.start("2", PLAN, actor="ana")
        rollouts.abort(actor="ana")
        second = rollouts.start("2", PLAN, actor="bo")
        assert (first.id, second.id) == ("2-1", "2-2")
        assert first.salt != second.salt
        audit = rollouts.store.audit()
        assert [(e.rollout, e.target) for e in audit] == [
            ("2-1", "shadow"),
            ("2-1", "aborted"),
            ("2-2", "shadow"),
        ]
