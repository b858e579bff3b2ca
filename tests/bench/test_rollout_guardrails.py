"""bench/rollout_guardrails.py: the worse candidates are +10 % in P50 MAE as it says, and
runs are counted as rollbacks at their first breach."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import polars as pl
import pytest


@pytest.fixture(scope="module")
def bench(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("rollout_guardrails")


def _pool(n: int = 500) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    y = rng.gamma(9.0, 200.0, n)
    p50 = y + rng.normal(0.0, 300.0, n)
    return {"y": y, "p50": p50, "p90": p50 + 400.0}


def _mae(rows: pl.DataFrame, version: str) -> float:
    frame = rows.filter(pl.col("version") == version)
    actual = (frame["outcome_time"] - frame["created_at"]).dt.total_microseconds() / 1e6
    return float((frame["p50_s"] - actual).abs().mean())


def test_the_noise_solved_adds_ten_percent_to_the_mae(bench: ModuleType) -> None:
    pool = _pool()
    tau = bench.noise_for(pool, 1.10)
    errors = pool["y"] - pool["p50"]
    noisy = errors[None, :] - np.random.default_rng(6).normal(0.0, tau, (400, errors.size))
    assert np.abs(noisy).mean() / np.abs(errors).mean() == pytest.approx(1.10, abs=0.005)


def test_the_worse_canary_candidate_errs_exactly_ten_percent_more(bench: ModuleType) -> None:
    pool = {k: np.full(4, v) for k, v in (("y", 1000.0), ("p50", 900.0), ("p90", 1300.0))}
    rows = bench.canary(worse=True)(pool, 0.0, 400, np.random.default_rng(1))
    assert _mae(rows, "1") == pytest.approx(100.0)
    assert _mae(rows, "2") == pytest.approx(110.0)


def test_shadow_rows_pair_every_order(bench: ModuleType) -> None:
    rows = bench.shadow(worse=True)(_pool(), 300.0, 1000, np.random.default_rng(1))
    assert rows.height == 1000
    assert rows.group_by("order_id").len()["len"].to_list() == [2] * 500


def test_summary_counts_first_breaches_within_the_limit(bench: ModuleType) -> None:
    results = [
        {"breach_at": 800, "passed_at": None, "reason": "worse: p50_mae +12%"},
        {"breach_at": 4000, "passed_at": 300, "reason": "worse: late_rate +1 pp"},
        {"breach_at": None, "passed_at": None, "reason": None, "last": "undecided: p50_mae x"},
    ]
    summary = bench.summary(results, 3000, 12000)
    assert summary["rolled_back_within_3000"] == 1
    assert summary["rolled_back_within_12000"] == 2
    assert summary["median_orders_to_rollback"] == 2400
    assert summary["passed_within_12000"] == 1
    assert summary["first_rails_breached"] == ["late_rate", "p50_mae"]
    assert summary["rails_undecided_at_the_end"] == {"p50_mae": 1}
