"""What a rollout is, as stored: versions, plan, salt, phase, revision, and its audit log.

A rollout moves through phases::

    shadow ──▶ canary step 0 ──▶ … ──▶ canary step n-1 ──▶ done
       │              │                        │
       └──────────────┴──── rolled_back (a guardrail breached) / aborted (by hand)

``paused`` is a flag over ``shadow`` and ``canary``: a paused rollout keeps its
traffic split and never advances. ``done``, ``rolled_back`` and ``aborted`` are final.
Every change raises ``revision`` by one and appends one :class:`AuditEntry`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec

from arrive.rollout.plan import RolloutPlan, UnitKey

Phase = Literal["shadow", "canary", "done", "rolled_back", "aborted"]
ACTIVE: Final = frozenset({"shadow", "canary"})
FORMAT: Final = 1


class Rollout(msgspec.Struct, frozen=True, kw_only=True):
    """One rollout's state.

    Attributes:
        id: ``"<candidate>-<n>"``, unique within a registry.
        candidate: the version being rolled out.
        control: the ``production`` version when the rollout started.
        plan: the plan it follows.
        salt: hex, drawn at start; the assignment hash's key for this rollout's life.
        phase: see the module docstring.
        step: the canary step (0-based) while ``phase == "canary"``; else -1.
        paused: held by hand; never advances while set.
        revision: raised by one at every change (compare-and-swap).
        started_at: when ``start`` ran.
        phase_started_at: when the current phase or step began.
    """

    id: str
    candidate: str
    control: str
    plan: RolloutPlan
    salt: str
    phase: Phase
    step: int = -1
    paused: bool = False
    revision: int = 1
    started_at: datetime
    phase_started_at: datetime
    format: int = FORMAT

    @property
    def active(self) -> bool:
        """Still in shadow or canary (paused or not)."""
        return self.phase in ACTIVE

    @property
    def share(self) -> float:
        """The candidate's share of units now (0 in shadow and after a rollback)."""
        if self.phase == "canary":
            return self.plan.share(self.step)
        return 1.0 if self.phase == "done" else 0.0

    @property
    def label(self) -> str:
        """``"shadow"``, ``"canary 25 %"``, ``"paused (canary 25 %)"``, ``"done"`` …"""
        where = f"canary {self.plan.steps[self.step]:g} %" if self.phase == "canary" else self.phase
        return f"paused ({where})" if self.paused else where

    def traffic(self) -> Traffic | None:
        """What a serving worker needs, or ``None`` when the rollout is over."""
        if not self.active:
            return None
        return Traffic(
            rollout=self.id,
            control=self.control,
            candidate=self.candidate,
            share=self.share,
            salt=bytes.fromhex(self.salt),
            unit=self.plan.unit,
            shadow=self.phase == "shadow",
            revision=self.revision,
        )


class Traffic(msgspec.Struct, frozen=True, kw_only=True):
    """The serving view of an active rollout: route a unit to ``candidate`` when its
    assignment (:mod:`arrive.rollout.assignment`) falls below ``share``. Off the hot
    path, each version scores the orders the other answered (in the ``shadow`` phase:
    the candidate scores every order), so the guardrails compare the two in pairs."""

    rollout: str
    control: str
    candidate: str
    share: float
    salt: bytes
    unit: UnitKey
    shadow: bool
    revision: int


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a rollout's append-only audit log.

    Attributes:
        rollout: the rollout's id.
        revision: the revision this change produced.
        at: when (the clock of the command or monitor that made it).
        source: the state before (``"-"`` for the start), as :attr:`Rollout.label`.
        target: the state after.
        actor: who: a user name, or ``"guardrails"`` for the monitor.
        reason: why, in one sentence.
        figures: the numbers behind the decision (guardrail figures, orders counted).
    """

    rollout: str
    revision: int
    at: datetime
    source: str
    target: str
    actor: str
    reason: str
    figures: dict[str, float] = msgspec.field(default_factory=dict)
