"""Intervals and breakdowns the reports draw, checked against values computed by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from arrive.errors import DataError
from arrive.evaluation import Z95, mean_interval
from arrive.training import diagnostics as dg


def test_wilson_interval_matches_the_textbook_values() -> None:
    # 9 of 10: the Wilson 95 % interval is (0.5958, 0.9821); the normal one would pass 1.
    low, high = dg.wilson_interval(9, 10)
    assert (round(low, 4), round(high, 4)) == (0.5958, 0.9821)
    assert dg.wilson_interval(0, 20)[0] == 0.0
    assert dg.wilson_interval(20, 20)[1] == 1.0
    assert dg.wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("coverage", "n", "target", "status"),
    [
        (0.907, 6556, 0.9, "on target"),  # the food-delivery run: 90.7 % is on target
        (0.93, 100, 0.9, "on target"),
        (0.93, 10_000, 0.9, "over-covered"),
        (0.85, 2_000, 0.9, "under-covered"),
    ],
)
def test_coverage_status_uses_the_interval_of_its_orders(
    coverage: float, n: int, target: float, status: str
) -> None:
    assert dg.coverage_status(coverage, n, target) == status


def test_mean_interval_is_the_normal_one() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    low, high = mean_interval(values)
    half = Z95 * float(np.std(values, ddof=1)) / 2
    assert (low, high) == pytest.approx((2.5 - half, 2.5 + half))
    assert mean_interval([7.0]) == (7.0, 7.0)


def test_breakdown_scores_each_group_in_the_given_order() -> None:
    y = [100.0, 200.0, 300.0, 400.0]
    p50 = [110.0, 190.0, 300.0, 380.0]
    p90 = [150.0, 250.0, 290.0, 450.0]
    rows = dg.breakdown(y, p50, p90, ["b", "a", "b", "a"], order=["b", "a", "c"])

    assert [r.label for r in rows] == ["b", "a"]  # "c" has no orders
    b, a = rows
    assert (b.n, b.mae_s, b.bias_s, b.coverage_p90) == (2, 5.0, -5.0, 0.5)
    assert (a.n, a.mae_s, a.bias_s, a.coverage_p90) == (2, 15.0, 15.0, 1.0)
    assert a.small
    assert b.small
    assert (a.coverage_low, a.coverage_high) == dg.wilson_interval(2, 2)


def test_breakdown_refuses_mismatched_lengths() -> None:
    with pytest.raises(DataError, match="breakdown: 2 actuals, 2 P50s, 2 P90s, 3 labels"):
        dg.breakdown([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], ["a", "b", "c"])


def test_bands_label_each_value_and_keep_their_order() -> None:
    labels, order = dg.distance_bands([0.5, 2.0, 7.5, 40.0, math.nan])
    assert labels == ["< 2", "2–5", "5–10", "≥ 15", "unknown"]
    assert order == ["< 2", "2–5", "5–10", "10–15", "≥ 15", "unknown"]
    labels, _ = dg.duration_bands([600.0, 3600.0])
    assert labels == ["< 15", "≥ 50"]


def test_p90_bands_hold_about_equal_counts() -> None:
    labels, order = dg.p90_bands(np.arange(1, 1001) * 60.0, bins=10)
    counts = [labels.count(name) for name in order]
    assert len(order) == 10
    assert max(counts) - min(counts) <= 2


def test_local_days_are_in_the_marketplace_zone() -> None:
    times = pl.Series([datetime(2022, 3, 30, 19, 0, tzinfo=UTC)])  # 00:30 on the 31st in India
    assert dg.local_days(times, "Asia/Kolkata") == ["03-31 Thu"]
    assert dg.local_days(times, "UTC") == ["03-30 Wed"]


def test_the_module_examples_run() -> None:
    import doctest

    from arrive import evaluation

    assert doctest.testmod(dg).failed == 0
    assert doctest.testmod(evaluation).failed == 0
