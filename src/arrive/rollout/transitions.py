"""The rollout state machine, pure: each function takes a rollout and returns the
:class:`Transition` it makes (the next state and its audit entry), or refuses.

No IO and no clock: callers pass ``now``. :mod:`arrive.rollout.control` stores the
result (compare-and-swap) and moves the registry's ``production`` alias when a
transition says ``promotes``.

A guardrail verdict (``hold``, ``pass`` or ``breach``) moves an active rollout:

* ``breach`` → ``rolled_back`` (control stays production), from any active phase,
  paused or not (a pause holds the ramp, never the safety net);
* ``pass`` on an unpaused rollout whose phase has its minimum orders and minimum
  time → the next step, and from the last step → ``done`` (the candidate becomes
  production);
* ``pass`` without that evidence, and ``hold`` → nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

import msgspec

from arrive.errors import RolloutRefused
from arrive.rollout.plan import RolloutPlan
from arrive.rollout.state import AuditEntry, Rollout


class VerdictLike(Protocol):
    """What the state machine reads of a guardrail verdict."""

    @property
    def action(self) -> Literal["hold", "pass", "breach"]: ...

    @property
    def reason(self) -> str: ...

    @property
    def figures(self) -> dict[str, float]: ...


@dataclass(frozen=True, slots=True)
class Transition:
    """A change to store: the rollout after it, its audit entry, and whether the
    candidate becomes ``production`` with it."""

    rollout: Rollout
    entry: AuditEntry
    promotes: bool = False


def start(
    *,
    rollout_id: str,
    candidate: str,
    control: str,
    plan: RolloutPlan,
    actor: str,
    now: datetime,
) -> Transition:
    """A new rollout in shadow (or at the first step when the plan has no shadow)."""
    phase: Literal["shadow", "canary"] = "shadow" if plan.shadow_minutes > 0 else "canary"
    rollout = Rollout(
        id=rollout_id,
        candidate=candidate,
        control=control,
        plan=plan,
        salt=secrets.token_hex(16),
        phase=phase,
        step=0 if phase == "canary" else -1,
        started_at=now,
        phase_started_at=now,
    )
    reason = f"version {candidate} against production {control}"
    return Transition(rollout, _entry(None, rollout, actor=actor, reason=reason, now=now))


def pause(rollout: Rollout, *, actor: str, reason: str, now: datetime) -> Transition:
    _require_active(rollout, "pause")
    if rollout.paused:
        raise RolloutRefused(f"rollout {rollout.id} is already paused")
    return _move(rollout, {"paused": True}, actor=actor, reason=reason, now=now)


def resume(rollout: Rollout, *, actor: str, reason: str, now: datetime) -> Transition:
    _require_active(rollout, "resume")
    if not rollout.paused:
        raise RolloutRefused(f"rollout {rollout.id} is not paused")
    return _move(rollout, {"paused": False}, actor=actor, reason=reason, now=now)


def abort(rollout: Rollout, *, actor: str, reason: str, now: datetime) -> Transition:
    """Stop by hand: every unit back to control, production unchanged."""
    _require_active(rollout, "abort")
    changes = {"phase": "aborted", "step": -1, "paused": False, "phase_started_at": now}
    return _move(rollout, changes, actor=actor, reason=reason, now=now)


def promote(rollout: Rollout, *, actor: str, reason: str, now: datetime) -> Transition:
    """Skip the remaining steps: the candidate becomes production now."""
    _require_active(rollout, "promote")
    return _done(rollout, actor=actor, reason=reason, now=now, figures={})


def apply(
    rollout: Rollout, verdict: VerdictLike, *, orders: int, now: datetime
) -> Transition | None:
    """Act on a guardrail verdict; ``orders`` is the joined orders counted in the
    current phase. ``None``: nothing changes (hold, paused, or not enough evidence)."""
    if not rollout.active or verdict.action == "hold":
        return None
    figures = {**verdict.figures, "orders": float(orders)}
    if verdict.action == "breach":
        changes: dict[str, object] = {"phase": "rolled_back", "step": -1, "phase_started_at": now}
    elif rollout.paused or not _evidence_met(rollout, orders, now):
        return None
    elif rollout.phase == "canary" and rollout.step == len(rollout.plan.steps) - 1:
        return _done(rollout, actor="guardrails", reason=verdict.reason, now=now, figures=figures)
    else:
        changes = {"phase": "canary", "step": rollout.step + 1, "phase_started_at": now}
    return _move(
        rollout, changes, actor="guardrails", reason=verdict.reason, now=now, figures=figures
    )


def _evidence_met(rollout: Rollout, orders: int, now: datetime) -> bool:
    plan = rollout.plan
    minutes = plan.shadow_minutes if rollout.phase == "shadow" else plan.min_minutes
    waited = now - rollout.phase_started_at >= timedelta(minutes=minutes)
    return waited and orders >= plan.min_orders


def _done(
    rollout: Rollout, *, actor: str, reason: str, now: datetime, figures: dict[str, float]
) -> Transition:
    changes = {"phase": "done", "step": -1, "paused": False, "phase_started_at": now}
    moved = _move(rollout, changes, actor=actor, reason=reason, now=now, figures=figures)
    return Transition(moved.rollout, moved.entry, promotes=True)


def _require_active(rollout: Rollout, command: str) -> None:
    if not rollout.active:
        raise RolloutRefused(f"cannot {command}: rollout {rollout.id} is {rollout.phase}")


def _move(
    rollout: Rollout,
    changes: dict[str, object],
    *,
    actor: str,
    reason: str,
    now: datetime,
    figures: dict[str, float] | None = None,
) -> Transition:
    after = msgspec.structs.replace(rollout, revision=rollout.revision + 1, **changes)
    entry = _entry(rollout, after, actor=actor, reason=reason, now=now, figures=figures)
    return Transition(after, entry)


def _entry(
    before: Rollout | None,
    after: Rollout,
    *,
    actor: str,
    reason: str,
    now: datetime,
    figures: dict[str, float] | None = None,
) -> AuditEntry:
    return AuditEntry(
        rollout=after.id,
        revision=after.revision,
        at=now,
        source="-" if before is None else before.label,
        target=after.label,
        actor=actor,
        reason=reason,
        figures=dict(figures or {}),
    )
