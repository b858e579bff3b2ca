"""The promotion gate, pure and through a registry."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from arrive.clock import ManualClock
from arrive.errors import (
    ConfigError,
    ModelIntegrityError,
    PromotionRefused,
    RegistryConflict,
    UserError,
)
from arrive.registry import InMemoryRegistry, PromotionPolicy, check_promotion, promote
from arrive.testing.registry_contract import START, InMemoryBackend, model_files

PRODUCTION = {"mae_s": 600.0, "coverage_p90": 0.9, "late_rate": 0.10}


def _metrics(**changes: Any) -> dict[str, Any]:
    return {**PRODUCTION, **changes}


@pytest.mark.parametrize(
    "candidate",
    [
        _metrics(),
        _metrics(mae_s=611.0),  # 1.8 % worse: within 2 %
        _metrics(mae_s=450.0),
        _metrics(coverage_p90=0.875),
        _metrics(coverage_p90=0.925),
        _metrics(late_rate=0.104),
        _metrics(late_rate=0.02),
    ],
)
def test_candidates_within_every_tolerance_pass(candidate: dict[str, Any]) -> None:
    assert check_promotion(candidate, PRODUCTION).allowed


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (_metrics(mae_s=613.0), r"mae_s 613.0 is 2.2% worse than production's 600.0"),
        (_metrics(coverage_p90=0.86), r"coverage_p90 0.860 is outside \[0.875, 0.925\]"),
        (_metrics(coverage_p90=0.95), r"coverage_p90 0.950 is outside"),
        (_metrics(late_rate=0.11), r"late_rate 0.110 is 0.010 above production's 0.100"),
        (_metrics(mae_s=None), r"candidate has no numeric mae_s"),
        (_metrics(mae_s=math.nan), r"candidate has no numeric mae_s"),
        (_metrics(coverage_p90=True), r"candidate has no numeric coverage_p90"),
        ({"coverage_p90": 0.9}, r"candidate has no numeric late_rate"),
    ],
)
def test_each_failed_check_refuses_with_its_reason(candidate: dict[str, Any], reason: str) -> None:
    decision = check_promotion(candidate, PRODUCTION)
    assert not decision.allowed
    assert any(re.search(reason, r) for r in decision.reasons), decision.reasons


def test_every_failure_is_listed() -> None:
    decision = check_promotion(_metrics(mae_s=700.0, coverage_p90=0.8, late_rate=0.2), PRODUCTION)
    assert len(decision.reasons) == 3


def test_production_without_a_metric_refuses() -> None:
    decision = check_promotion(PRODUCTION, {"coverage_p90": 0.9})
    assert decision.reasons == (
        "production has no numeric mae_s metric to compare with",
        "production has no numeric late_rate metric to compare with",
    )


def test_without_production_only_calibration_counts() -> None:
    assert check_promotion({"coverage_p90": 0.9}, None).allowed
    assert not check_promotion({"mae_s": 1.0, "coverage_p90": 0.7}, None).allowed


def test_policy_is_configurable() -> None:
    loose = PromotionPolicy(
        mae_rel_tolerance=0.2, coverage_p90_min=0.8, late_rate_abs_tolerance=0.1
    )
    assert check_promotion(
        _metrics(mae_s=700.0, coverage_p90=0.82, late_rate=0.15), PRODUCTION, loose
    ).allowed


@pytest.mark.parametrize(
    "settings",
    [
        {"coverage_p90_min": 0.95},
        {"coverage_p90_max": 1.5},
        {"mae_rel_tolerance": -0.1},
        {"late_rate_abs_tolerance": math.nan},
    ],
)
def test_invalid_policy_is_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        PromotionPolicy(**settings)


# -- promote() through a registry ---------------------------------------------


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend()


@pytest.fixture
def registry(backend: InMemoryBackend) -> InMemoryRegistry:
    registry = InMemoryRegistry(clock=ManualClock(START), blobs=backend.blobs)
    registry.register(model_files("1"), {"metrics": PRODUCTION})
    registry.register(model_files("2"), {"metrics": _metrics(mae_s=550.0)})
    registry.register(model_files("3"), {"metrics": _metrics(mae_s=700.0)})
    registry.register(model_files("4"), {"metrics": _metrics(coverage_p90=0.7)})
    return registry


def test_first_promotion_needs_only_calibration(registry: InMemoryRegistry) -> None:
    done = promote(registry, "3")
    assert not done.forced
    assert registry.get("production").version == "3"
    assert registry.alias_history("production")[0].reason == "promoted to production"


def test_miscalibrated_first_model_is_refused(registry: InMemoryRegistry) -> None:
    with pytest.raises(PromotionRefused, match=r"coverage_p90 0\.700") as refused:
        promote(registry, "4")
    assert isinstance(refused.value, UserError)
    assert refused.value.exit_code == 2
    assert registry.alias_history("production") == []


def test_worse_candidate_is_refused_better_one_promoted(registry: InMemoryRegistry) -> None:
    promote(registry, "1", reason="baseline")
    with pytest.raises(PromotionRefused, match=r"version 3 cannot become production: mae_s"):
        promote(registry, "3")
    assert promote(registry, "2").change.previous == "1"
    assert registry.get("production").version == "2"


def test_force_overrides_the_gate_and_says_so(registry: InMemoryRegistry) -> None:
    promote(registry, "1")
    done = promote(registry, "3", force=True, reason="hotfix")
    assert done.forced
    assert "mae_s" in done.decision.reasons[0]
    reason = registry.alias_history("production")[-1].reason
    assert reason.startswith("hotfix [forced past the gate: mae_s 700.0")


def test_canary_is_gated_against_production_shadow_is_not(registry: InMemoryRegistry) -> None:
    promote(registry, "1")
    with pytest.raises(PromotionRefused):
        promote(registry, "3", alias="canary")
    assert promote(registry, "4", alias="shadow").change.version == "4"


def test_production_without_metrics_refuses_until_forced(registry: InMemoryRegistry) -> None:
    registry.register(model_files("5"), {})
    promote(registry, "5", force=True)
    with pytest.raises(PromotionRefused, match="production has no numeric mae_s"):
        promote(registry, "2")


def test_corrupted_candidate_is_refused_even_when_forced(
    registry: InMemoryRegistry, backend: InMemoryBackend
) -> None:
    backend.tamper("2", "p90.txt", b"edited")
    with pytest.raises(ModelIntegrityError, match="p90"):
        promote(registry, "2", force=True)


def test_promote_refusals_from_the_registry(registry: InMemoryRegistry) -> None:
    with pytest.raises(ConfigError):
        promote(registry, "1", alias="prod")
    promote(registry, "1")
    with pytest.raises(RegistryConflict):
        promote(registry, "1")
