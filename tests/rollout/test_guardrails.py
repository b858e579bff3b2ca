"""The guardrails: each rail breaches on its own failing case, passes with evidence, holds
without it; reasons and figures name the rails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from arrive.errors import ConfigError, DataError
from arrive.rollout.guardrails import COLUMNS, Guardrails, evaluate

START = datetime(2026, 3, 2, 12, tzinfo=UTC)
RAILS = Guardrails()


def _arm(
    version: str,
    n: int,
    seed: int,
    *,
    scale: float = 1.0,
    p90_z: float = 1.2816,
    fallback: float = 0.0,
    slower_s: float = 0.0,
    cancelled: float | None = None,
    errors: float | None = None,
) -> pl.DataFrame:
    """``n`` joined rows: normal P50 errors of 300 s × ``scale``, the P90 at ``p90_z``
    standard deviations (1.28: covers 90 %), a ``fallback`` share, deliveries
    ``slower_s`` longer, a ``cancelled`` share and an ``errors`` share (requests that
    ended in an error: no prediction) when given."""
    rng = np.random.default_rng(seed)
    actual = rng.gamma(9.0, 200.0, n) + slower_s
    p50 = actual + rng.normal(0.0, 300.0 * scale, n)
    created = [START + timedelta(seconds=i) for i in range(n)]
    pair = (created, actual)
    rows = pl.DataFrame(
        {
            "order_id": [f"{version}-{i}" for i in range(n)],
            "version": version,
            "variant": "production" if version == "1" else "canary",
            "time": created,
            "created_at": created,
            "outcome_time": [c + timedelta(seconds=float(a)) for c, a in zip(*pair, strict=True)],
            "p50_s": p50,
            "p90_s": p50 + p90_z * 300.0 * scale,
            "fallback": np.where(rng.random(n) < fallback, "stale_features", "none"),
            "market_id": "1",
        }
    )
    if cancelled is not None:
        rows = rows.with_columns(
            outcome=pl.Series(np.where(rng.random(n) < cancelled, "cancelled", "delivered"))
        )
    if errors is not None:
        failed = pl.Series(rng.random(n) < errors)
        rows = rows.with_columns(
            error=pl.when(failed).then(pl.lit("IndexError")),
            p50_s=pl.when(~failed).then("p50_s"),
            p90_s=pl.when(~failed).then("p90_s"),
        )
    return rows


def _verdict(
    candidate: pl.DataFrame, n: int = 4000, **control: float
) -> tuple[str, str, dict[str, float]]:
    rows = pl.concat([_arm("1", n, seed=1, **control), candidate], how="diagonal_relaxed")
    verdict = evaluate(rows, "1", "2", RAILS)
    return verdict.action, verdict.reason, verdict.figures


def test_an_equal_candidate_passes_with_enough_orders() -> None:
    # a canary at 25 %: 8,000 candidate orders against 24,000
    action, reason, figures = _verdict(_arm("2", 8000, seed=2), n=24000)
    assert action == "pass", reason
    assert reason.startswith("every rail within its margin: p50_mae, p90_coverage")
    assert figures["orders_candidate"] == 8000
    assert figures["p50_mae_rel_lower"] < 0 < figures["p50_mae_rel_upper"]


def test_below_the_minimum_sample_it_holds_whatever_the_figures() -> None:
    rows = pl.concat([_arm("1", 4000, seed=1), _arm("2", 299, seed=2, scale=3.0)])
    verdict = evaluate(rows, "1", "2", RAILS)
    assert verdict.action == "hold"
    assert verdict.reason == (
        "minimum sample: 299 candidate and 299 control orders, 300 of each needed"
    )


def test_a_worse_p50_breaches_and_names_the_rail() -> None:
    action, reason, figures = _verdict(_arm("2", 4000, seed=2, scale=1.3))
    assert action == "breach"
    assert reason.startswith("worse: p50_mae +")
    assert "two-sample" in reason
    assert figures["p50_mae_rel_lower"] > 0


def test_too_few_orders_for_evidence_hold_and_say_which_rails() -> None:
    action, reason, _ = _verdict(_arm("2", 400, seed=2, scale=1.03), n=400)
    assert action == "hold"
    assert reason.startswith("undecided: p50_mae")


def test_a_miscalibrated_p90_breaches_the_coverage_band() -> None:
    # the P90 at 0.84 sd covers 80 %: outside 90 ± 2 pp; MAE unchanged
    action, reason, figures = _verdict(_arm("2", 4000, seed=2, p90_z=0.84))
    assert action == "breach"
    rails = [part.split(" ", 1)[0] for part in reason.removeprefix("worse: ").split("; ")]
    assert rails == ["p90_coverage", "late_rate"]
    assert figures["p90_coverage_upper"] < 0.88


def test_an_overcautious_p90_breaches_the_band_but_not_the_late_rate() -> None:
    action, reason, figures = _verdict(_arm("2", 4000, seed=2, p90_z=2.3))
    assert action == "breach"
    assert reason.startswith("worse: p90_coverage")
    assert "late_rate" not in reason
    assert figures["p90_coverage_lower"] > 0.92


def test_a_p90_wider_than_the_controls_within_the_band_does_not_pass() -> None:
    # control covers 88.5 %, candidate 91.5 %: both in the band, the candidate's P90s wider
    control = {"p90_z": 1.2}
    action, reason, figures = _verdict(_arm("2", 8000, seed=2, p90_z=1.37), n=24000, **control)
    assert action == "hold", reason
    assert reason.startswith("undecided: p90_coverage")
    assert figures["p90_coverage_candidate"] > figures["p90_coverage_control"] + 0.02


def test_a_higher_late_rate_than_the_control_breaches_within_the_band() -> None:
    # control over-covers (95 %), candidate at 88.5 %: within the band, later than control
    control = {"p90_z": 1.645}
    action, reason, figures = _verdict(_arm("2", 6000, seed=2, p90_z=1.2), **control)
    assert action == "breach", reason
    assert reason.startswith("worse: late_rate")
    assert figures["late_rate_diff_lower"] > 0


def test_more_fallbacks_breach() -> None:
    action, reason, figures = _verdict(_arm("2", 4000, seed=2, fallback=0.05))
    assert action == "breach"
    assert reason.startswith("worse: fallback_share +")
    assert figures["fallback_share_candidate"] > figures["fallback_share_control"]


def test_more_requests_ending_in_an_error_breach_the_error_rail() -> None:
    action, reason, figures = _verdict(_arm("2", 4000, seed=2, errors=0.03), errors=0.0)
    assert action == "breach"
    assert reason.startswith("worse: error_rate +")
    assert figures["error_rate_control"] == 0
    assert figures["error_rate_candidate"] == pytest.approx(0.03, abs=0.01)


def test_equal_error_rates_pass_and_errored_requests_stay_out_of_the_other_rails() -> None:
    action, reason, figures = _verdict(_arm("2", 8000, seed=2, errors=0.02), n=24000, errors=0.02)
    assert action == "pass", reason
    assert "error_rate" in reason
    assert figures["error_rate_candidate"] == pytest.approx(0.02, abs=0.005)
    # the orders judged on accuracy are those with a prediction
    assert figures["orders_candidate"] == pytest.approx(8000 * 0.98, abs=60)
    assert np.isfinite(figures["p50_mae_candidate_s"])


def test_a_candidate_whose_requests_all_fail_breaches_before_the_minimum_sample() -> None:
    action, reason, figures = _verdict(_arm("2", 400, seed=2, errors=1.0), errors=0.0)
    assert figures["orders_candidate"] == 0  # no answered order: the sample is never met
    assert action == "breach"
    assert reason.startswith("worse: error_rate +100.00 pp")


def test_a_few_errors_below_the_minimum_sample_hold() -> None:
    action, reason, _ = _verdict(_arm("2", 250, seed=2, errors=0.01), errors=0.0)
    assert action == "hold"
    assert reason.startswith("minimum sample:")


def test_without_any_error_there_is_no_error_rail() -> None:
    action, reason, figures = _verdict(_arm("2", 8000, seed=2, errors=0.0), n=24000, errors=0.0)
    assert action == "pass", reason
    assert "error_rate" not in reason
    assert "error_rate_candidate" not in figures


def test_slower_deliveries_breach_the_p95() -> None:
    action, reason, figures = _verdict(_arm("2", 4000, seed=2, slower_s=600.0))
    assert action == "breach"
    assert "delivery_p95" in reason
    assert figures["delivery_p95_candidate_s"] - figures["delivery_p95_control_s"] > 180


def test_more_cancellations_breach_when_the_rows_carry_outcomes() -> None:
    control = {"cancelled": 0.02}
    action, reason, figures = _verdict(_arm("2", 4000, seed=2, cancelled=0.06), **control)
    assert action == "breach"
    assert reason.startswith("worse: cancel_rate")
    assert figures["cancel_rate_diff_lower"] > 0.01
    # cancelled rows have no duration: the other rails read deliveries only
    assert figures["orders_candidate"] < 4000 * 0.97


def test_without_outcomes_there_is_no_cancellation_rail() -> None:
    _, _, figures = _verdict(_arm("2", 4000, seed=2))
    assert "cancel_rate_candidate" not in figures


def test_orders_both_versions_predicted_are_compared_in_pairs() -> None:
    control = _arm("1", 600, seed=1)
    noise = np.random.default_rng(3).normal(0.0, 150.0, 600)
    shadow = control.with_columns(
        version=pl.lit("2"), variant=pl.lit("shadow"), p50_s=pl.col("p50_s") + noise
    )
    verdict = evaluate(pl.concat([control, shadow]), "1", "2", RAILS)
    assert verdict.action == "breach"
    assert "paired" in verdict.reason
    assert verdict.figures["orders_paired"] == 600


def _top_step(n: int, scale: float, seed: int = 4) -> pl.DataFrame:
    """Rows of a 100 % step as serving logs them: every order answered by the candidate
    and scored by the control in the shadow. The candidate's P50 errors have ``scale`` ×
    the control's spread and a correlation of 0.8 with them (two models of the same
    features miss the same hard orders)."""
    control = _arm("1", n, seed=1).with_columns(variant=pl.lit("shadow"))
    actual = (pl.col("outcome_time") - pl.col("created_at")).dt.total_microseconds() / 1e6
    own = pl.Series(np.random.default_rng(seed).normal(0.0, 300.0, n))
    error = 0.8 * (pl.col("p50_s") - actual) + 0.6 * own
    candidate = control.with_columns(
        version=pl.lit("2"), variant=pl.lit("candidate"), p50_s=actual + scale * error
    ).with_columns(p90_s=pl.col("p50_s") + 1.2816 * 300.0 * scale)
    return pl.concat([candidate, control])


def test_a_100_percent_step_without_control_rows_can_never_pass() -> None:
    candidate_only = _top_step(6000, scale=0.9).filter(pl.col("version") == "2")
    verdict = evaluate(candidate_only, "1", "2", RAILS)
    assert verdict.action == "hold"
    assert verdict.reason.startswith("minimum sample: 0 candidate and 0 control orders")


def test_a_100_percent_step_passes_on_the_controls_shadow_pairs() -> None:
    verdict = evaluate(_top_step(4000, scale=0.9), "1", "2", RAILS)
    assert verdict.action == "pass", verdict.reason
    assert verdict.figures["orders_paired"] == 4000
    assert verdict.figures["p50_mae_rel_upper"] < 0
    # no customer answered by the control: the customer rails have nothing to compare
    assert verdict.reason.endswith("p50_mae, p90_coverage, late_rate")


def test_a_candidate_turning_bad_at_100_percent_breaches_on_the_pairs() -> None:
    verdict = evaluate(_top_step(600, scale=1.3), "1", "2", RAILS)
    assert verdict.action == "breach"
    assert verdict.reason.startswith("worse: p50_mae +")
    assert "(paired" in verdict.reason


def test_at_a_paired_canary_step_the_customer_rails_read_only_the_answered_rows() -> None:
    # a 50 % step: each order answered by one version, scored by the other in the shadow
    rows = _top_step(4000, scale=1.0)
    even = (pl.col("order_id").str.split("-").list.last().cast(pl.Int64) % 2) == 0
    on_candidate = pl.col("version") == "2"
    rows = rows.with_columns(
        variant=pl.when(even)
        .then(pl.when(on_candidate).then(pl.lit("shadow")).otherwise(pl.lit("control")))
        .otherwise(pl.when(on_candidate).then(pl.lit("candidate")).otherwise(pl.lit("shadow"))),
        # a fifth of the candidate's answers fell back; its shadow rows never do
        fallback=pl.when(on_candidate & ~even & (pl.col("p50_s") % 5 < 1))
        .then(pl.lit("stale_features"))
        .otherwise(pl.lit("none")),
    )
    verdict = evaluate(rows, "1", "2", RAILS)
    figures = verdict.figures
    assert figures["orders_paired"] == 4000  # the error rails: every order, in pairs
    assert figures["fallback_share_control"] == 0
    assert figures["fallback_share_candidate"] == pytest.approx(0.2, abs=0.03)  # not 0.1
    assert "delivery_p95_candidate_s" in figures  # two arms of different customers
    assert verdict.action == "breach"
    assert verdict.reason.startswith("worse: fallback_share +")


def test_in_the_shadow_phase_only_the_error_rails_judge() -> None:
    control = _arm("1", 600, seed=1)
    shadow = control.with_columns(version=pl.lit("2"), variant=pl.lit("shadow"))
    verdict = evaluate(pl.concat([control, shadow]), "1", "2", RAILS)
    assert "fallback_share_candidate" not in verdict.figures
    assert "delivery_p95_candidate_s" not in verdict.figures


def _timed(rows: pl.DataFrame, seed: int, slow_share: float = 0.0) -> pl.DataFrame:
    """``rows`` with the service's time per request: ~5 ms, and ``slow_share`` of them
    40 ms more."""
    rng = np.random.default_rng(seed)
    n = rows.height
    latency = rng.gamma(4.0, 0.00125, n) + np.where(rng.random(n) < slow_share, 0.04, 0.0)
    return rows.with_columns(latency_s=pl.Series(latency))


def test_a_candidate_slower_at_the_p99_breaches_the_latency_rail() -> None:
    candidate = _timed(_arm("2", 4000, seed=2), seed=3, slow_share=0.05)
    rows = pl.concat([_timed(_arm("1", 4000, seed=1), seed=4), candidate])
    verdict = evaluate(rows, "1", "2", RAILS)
    assert verdict.action == "breach"
    assert "latency_p99 p99" in verdict.reason
    assert verdict.figures["latency_over_limit_share"] == pytest.approx(0.05, abs=0.01)


def test_an_equally_fast_candidate_passes_the_latency_rail_and_it_never_holds() -> None:
    # a canary at 25 %, as in the first test, both arms timed alike
    candidate = _timed(_arm("2", 8000, seed=2), seed=3)
    rows = pl.concat([_timed(_arm("1", 24000, seed=1), seed=4), candidate])
    verdict = evaluate(rows, "1", "2", RAILS)
    assert verdict.action == "pass", verdict.reason
    assert "latency_p99" in verdict.reason
    few = pl.concat([_timed(_arm("1", 400, seed=1), seed=4), _timed(_arm("2", 400, seed=2), 3)])
    # with too little evidence the verdict holds, naming the undecided rails: never latency
    assert "latency_p99" not in evaluate(few, "1", "2", RAILS).reason


def test_only_the_shared_period_and_markets_count() -> None:
    control = _arm("1", 4000, seed=1)
    late = _arm("2", 4000, seed=2).with_columns(time=pl.col("time") + timedelta(seconds=3000))
    other_market = _arm("2", 500, seed=3, scale=3.0).with_columns(market_id=pl.lit("9"))
    verdict = evaluate(pl.concat([control, late, other_market]), "1", "2", RAILS)
    assert verdict.figures["orders_candidate"] == 1000
    assert verdict.figures["orders_control"] == 1000


def test_a_missing_column_is_named() -> None:
    rows = _arm("1", 10, seed=1).drop("p90_s")
    with pytest.raises(DataError, match="missing column 'p90_s'"):
        evaluate(rows, "1", "2", RAILS)
    assert "p90_s" in COLUMNS


@pytest.mark.parametrize(
    ("field", "value"), [("alpha_breach", 1.0), ("min_orders", 0), ("mae_margin", -0.1)]
)
def test_bad_limits_are_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        Guardrails(**{field: value})
