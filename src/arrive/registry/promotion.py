"""The promotion gate: may a candidate model replace production?

:func:`check_promotion` is pure: it compares two metric mappings (the ``metrics``
entry of each version's metadata) under a :class:`PromotionPolicy`. A candidate is
refused when

* its ``mae_s`` is worse than production's by more than ``mae_rel_tolerance``,
* its ``coverage_p90`` lies outside ``[coverage_p90_min, coverage_p90_max]``, or
* its ``late_rate`` exceeds production's by more than ``late_rate_abs_tolerance``.

With no production model, only calibration is checked. A metric that is missing,
not a number, or NaN refuses the candidate too: the gate never passes by default.
:func:`promote` applies the gate through a registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arrive.errors import ConfigError, ModelNotFound, PromotionRefused
from arrive.registry.base import AliasChange, ModelRegistry, ModelVersion
from arrive.registry.index import check_alias


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionPolicy:
    """Thresholds of the promotion gate.

    Attributes:
        mae_rel_tolerance: how much worse the candidate's ``mae_s`` may be, relative to
            production's (0.02: up to 2 % higher).
        coverage_p90_min: lowest acceptable ``coverage_p90`` (share of orders delivered
            by their P90).
        coverage_p90_max: highest acceptable ``coverage_p90`` (above it, P90 promises
            are needlessly long).
        late_rate_abs_tolerance: how much the candidate's ``late_rate`` (a fraction) may
            exceed production's, in absolute terms (0.005: half a percentage point).
        gated_aliases: aliases the gate guards; others (``shadow`` serves no one) are
            set without checks.

    Raises:
        ConfigError: a threshold is negative or the coverage bounds are not within [0, 1].
    """

    mae_rel_tolerance: float = 0.02
    coverage_p90_min: float = 0.875
    coverage_p90_max: float = 0.925
    late_rate_abs_tolerance: float = 0.005
    gated_aliases: frozenset[str] = frozenset({"production", "canary"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.coverage_p90_min <= self.coverage_p90_max <= 1.0:
            raise ConfigError(
                f"coverage_p90 bounds [{self.coverage_p90_min}, {self.coverage_p90_max}]: "
                "need 0 <= min <= max <= 1"
            )
        for name in ("mae_rel_tolerance", "late_rate_abs_tolerance"):
            if not getattr(self, name) >= 0.0:
                raise ConfigError(f"{name}: must be 0 or more, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class PromotionDecision:
    """The gate's verdict: ``reasons`` holds one sentence per failed check."""

    allowed: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Promotion:
    """What :func:`promote` did: the alias change and the gate's decision
    (``decision.allowed`` is false when the promotion was forced)."""

    change: AliasChange
    decision: PromotionDecision

    @property
    def forced(self) -> bool:
        return not self.decision.allowed


def check_promotion(
    candidate_metrics: Mapping[str, Any],
    production_metrics: Mapping[str, Any] | None,
    policy: PromotionPolicy | None = None,
) -> PromotionDecision:
    """Decide whether a candidate may replace production (``None``: there is none yet)."""
    policy = policy if policy is not None else PromotionPolicy()
    reasons = _calibration(candidate_metrics, policy)
    if production_metrics is not None:
        reasons += _mae(candidate_metrics, production_metrics, policy)
        reasons += _late_rate(candidate_metrics, production_metrics, policy)
    return PromotionDecision(allowed=not reasons, reasons=tuple(reasons))


def _number(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _missing(key: str, candidate: float | None, production: float | None) -> list[str]:
    reasons = []
    if candidate is None:
        reasons.append(f"candidate has no numeric {key} metric")
    if production is None:
        reasons.append(f"production has no numeric {key} metric to compare with")
    return reasons


def _calibration(candidate: Mapping[str, Any], policy: PromotionPolicy) -> list[str]:
    coverage = _number(candidate, "coverage_p90")
    if coverage is None:
        return ["candidate has no numeric coverage_p90 metric"]
    if policy.coverage_p90_min <= coverage <= policy.coverage_p90_max:
        return []
    return [
        f"coverage_p90 {coverage:.3f} is outside "
        f"[{policy.coverage_p90_min:.3f}, {policy.coverage_p90_max:.3f}]"
    ]


def _mae(
    candidate: Mapping[str, Any], production: Mapping[str, Any], policy: PromotionPolicy
) -> list[str]:
    ours, theirs = _number(candidate, "mae_s"), _number(production, "mae_s")
    if ours is None or theirs is None:
        return _missing("mae_s", ours, theirs)
    if ours <= theirs * (1.0 + policy.mae_rel_tolerance):
        return []
    worse = ours / theirs - 1.0 if theirs > 0 else math.inf
    return [
        f"mae_s {ours:.1f} is {worse:.1%} worse than production's {theirs:.1f} "
        f"(tolerance {policy.mae_rel_tolerance:.1%})"
    ]


def _late_rate(
    candidate: Mapping[str, Any], production: Mapping[str, Any], policy: PromotionPolicy
) -> list[str]:
    ours, theirs = _number(candidate, "late_rate"), _number(production, "late_rate")
    if ours is None or theirs is None:
        return _missing("late_rate", ours, theirs)
    if ours <= theirs + policy.late_rate_abs_tolerance:
        return []
    return [
        f"late_rate {ours:.3f} is {ours - theirs:.3f} above production's {theirs:.3f} "
        f"(tolerance {policy.late_rate_abs_tolerance:.3f})"
    ]


def promote(
    registry: ModelRegistry,
    ref: str,
    alias: str = "production",
    *,
    force: bool = False,
    reason: str | None = None,
    policy: PromotionPolicy | None = None,
) -> Promotion:
    """Point ``alias`` at ``ref`` if the gate allows it (or ``force`` overrides it).

    Every artifact of the candidate is verified first, forced or not. The gate
    compares the candidate with the version ``production`` points at; aliases outside
    ``policy.gated_aliases`` are set without checks. A forced promotion records the
    overridden reasons in the alias history.

    Raises:
        PromotionRefused: the gate refused and ``force`` is off.
        ModelNotFound: ``ref`` designates no version.
        ModelIntegrityError: an artifact of the candidate fails its checksum.
        ConfigError: ``alias`` is not a known alias.
        RegistryConflict: ``alias`` already points at the candidate.
    """
    policy = policy if policy is not None else PromotionPolicy()
    check_alias(alias)
    candidate = registry.open(ref).version
    decision = _decide(registry, candidate, alias, policy)
    if not decision.allowed and not force:
        raise PromotionRefused(
            f"version {candidate.version} cannot become {alias}: "
            f"{'; '.join(decision.reasons)} (force to override)",
            decision.reasons,
        )
    note = reason or f"promoted to {alias}"
    if not decision.allowed:
        note += f" [forced past the gate: {'; '.join(decision.reasons)}]"
    change = registry.set_alias(alias, candidate.version, reason=note)
    return Promotion(change=change, decision=decision)


def _decide(
    registry: ModelRegistry, candidate: ModelVersion, alias: str, policy: PromotionPolicy
) -> PromotionDecision:
    if alias not in policy.gated_aliases:
        return PromotionDecision(allowed=True)
    try:
        production: Mapping[str, Any] | None = registry.get("production").metrics
    except ModelNotFound:
        production = None
    return check_promotion(candidate.metrics, production, policy)
