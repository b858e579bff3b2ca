"""Running rollouts against a registry: the commands (start, pause, resume, abort,
promote) and the guardrails' verdicts, each one compare-and-swap on the stored state.

:class:`Rollouts` reads the stored rollout, computes the transition
(:mod:`arrive.rollout.transitions`) and commits it only if nobody changed the rollout
in between, so of two commands racing, one wins and the other raises
:class:`~arrive.errors.RolloutConflict` having changed nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from arrive.clock import Clock, SystemClock
from arrive.errors import ModelIntegrityError, ModelNotFound, RolloutRefused
from arrive.registry import ModelRegistry
from arrive.rollout import transitions
from arrive.rollout.plan import RolloutPlan
from arrive.rollout.state import AuditEntry, Rollout
from arrive.rollout.store import RolloutStore, rollout_store
from arrive.rollout.transitions import Transition, VerdictLike

#: Seconds the model check of a candidate may take (``arrive models verify``'s default).
CHECK_TIMEOUT_S: Final = 300.0

Verifier = Callable[[ModelRegistry, str], str | None]
"""Checks a version before it is rolled out: ``None`` if fit, else why not."""


def check_version(
    registry: ModelRegistry, version: str, *, timeout_s: float = CHECK_TIMEOUT_S
) -> str | None:
    """``arrive models verify``'s check: every checksum, then the model run in a child
    process on its probe batch. ``None`` if it passes, else the reason."""
    # Imported here: LightGBM and Polars load in a second, and only a start needs them.
    from arrive.models.check import check_files
    from arrive.models.quantile import META_FILE

    try:
        loaded = registry.open(version)
    except ModelIntegrityError as exc:
        return str(exc)
    if META_FILE not in loaded.files:
        return None  # not a model bundle: the checksums are all there is to check
    check = check_files(loaded.files, timeout_s=timeout_s)
    return None if check.ok else check.reason


class Rollouts:
    """The rollouts of one registry.

    Args:
        registry: where versions and the ``production`` alias live.
        store: where the rollout is kept (default: the one kept with ``registry``).
        clock: the time of every transition (default: system clock).
        verify: the check a candidate must pass at start (default: :func:`check_version`).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        store: RolloutStore | None = None,
        clock: Clock | None = None,
        verify: Verifier = check_version,
    ) -> None:
        self.registry = registry
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.store = store if store is not None else rollout_store(registry, clock=self._clock)
        self._verify = verify

    def status(self) -> Rollout | None:
        """The current (or last) rollout, read now."""
        return self.store.read()

    def audit(self) -> list[AuditEntry]:
        return self.store.audit()

    def start(self, ref: str, plan: RolloutPlan, *, actor: str) -> Rollout:
        """Start rolling out ``ref`` against the current ``production``.

        Raises:
            ModelNotFound: no such version.
            RolloutRefused: a rollout is active, ``ref`` is already production, there is
                no production, or the version fails its check.
        """
        before = self.store.read()
        if before is not None and before.active:
            raise RolloutRefused(
                f"rollout {before.id} (version {before.candidate}) is {before.label}: "
                "abort it or let it finish first"
            )
        candidate = self.registry.get(ref).version
        control = self._production()
        if candidate == control:
            raise RolloutRefused(f"version {candidate} is already production")
        failure = self._verify(self.registry, candidate)
        if failure is not None:
            raise RolloutRefused(f"version {candidate} fails its check: {failure}")
        started = transitions.start(
            rollout_id=f"{candidate}-{self._count_started() + 1}",
            candidate=candidate,
            control=control,
            plan=plan,
            actor=actor,
            now=self._clock.now(),
        )
        self.store.commit(started, expected=_stamp(before))
        return started.rollout

    def pause(self, *, actor: str, reason: str = "paused by hand") -> Rollout:
        return self._command(transitions.pause, actor=actor, reason=reason)

    def resume(self, *, actor: str, reason: str = "resumed by hand") -> Rollout:
        return self._command(transitions.resume, actor=actor, reason=reason)

    def abort(self, *, actor: str, reason: str = "aborted by hand") -> Rollout:
        return self._command(transitions.abort, actor=actor, reason=reason)

    def promote(self, *, actor: str, reason: str = "promoted by hand") -> Rollout:
        return self._command(transitions.promote, actor=actor, reason=reason)

    def apply(self, verdict: VerdictLike, *, orders: int) -> Transition | None:
        """Act on a guardrail verdict (``orders``: joined orders counted in the current
        phase). ``None`` when nothing changes."""
        before = self.store.read()
        if before is None:
            return None
        moved = transitions.apply(before, verdict, orders=orders, now=self._clock.now())
        if moved is not None:
            self._commit(moved, before)
        return moved

    def _command(self, step: Callable[..., Transition], *, actor: str, reason: str) -> Rollout:
        before = self.store.read()
        if before is None:
            raise RolloutRefused("no rollout in this registry: start one (`arrive rollout start`)")
        moved = step(before, actor=actor, reason=reason, now=self._clock.now())
        self._commit(moved, before)
        return moved.rollout

    def _commit(self, moved: Transition, before: Rollout) -> None:
        done, reason = moved.rollout, moved.entry.reason
        effect = (lambda: self._make_production(done, reason)) if moved.promotes else None
        self.store.commit(moved, expected=_stamp(before), effect=effect)

    def _make_production(self, rollout: Rollout, reason: str) -> None:
        holder = self._production()
        if holder != rollout.control:
            raise RolloutRefused(
                f"production moved to version {holder} during rollout {rollout.id} "
                f"(it started against {rollout.control}): abort the rollout"
            )
        self.registry.set_alias(
            "production", rollout.candidate, reason=f"rollout {rollout.id}: {reason}"
        )

    def _production(self) -> str:
        try:
            return self.registry.get("production").version
        except ModelNotFound:
            raise RolloutRefused(
                "no production version to roll out against: promote one first "
                "(`arrive models promote VERSION`)"
            ) from None

    def _count_started(self) -> int:
        return sum(1 for entry in self.store.audit() if entry.source == "-")


def _stamp(rollout: Rollout | None) -> tuple[str, int] | None:
    return None if rollout is None else (rollout.id, rollout.revision)
