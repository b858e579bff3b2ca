"""Calibration: the conformal quantile (equal or recency weights), the refit, and the window."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from arrive.calibration import (
    apply_scales,
    fit_anchor_offset,
    fit_calibration,
    fit_scales,
    recency_weights,
    weighted_conformal_quantile,
)
from arrive.errors import ConfigError, DataError
from arrive.models import QuantileEta
from arrive.training.split import SplitFractions, make_split


@pytest.mark.parametrize("n", [1, 9, 50, 333, 1000])
@pytest.mark.parametrize("level", [0.1, 0.5, 0.9, 0.975])
def test_equal_weights_give_the_split_conformal_rank(n: int, level: float) -> None:
    scores = np.random.default_rng(n).normal(size=n)
    rank = min(math.ceil((n + 1) * level), n)
    assert weighted_conformal_quantile(scores, level) == np.sort(scores)[rank - 1]
    assert weighted_conformal_quantile(scores, level, np.full(n, 0.3)) == np.sort(scores)[rank - 1]


def test_recency_weights_halve_every_half_life() -> None:
    weights = recency_weights(100, 0.25)
    assert weights[-1] == 1.0
    assert weights[-26] == pytest.approx(0.5)
    assert weights[-51] == pytest.approx(0.25)
    assert np.all(np.diff(weights) > 0)
    assert np.array_equal(recency_weights(5, None), np.ones(5))


def test_recency_weights_follow_a_change_inside_the_window() -> None:
    # the window's older half is twice as spread as its recent half
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 2, 5000), rng.normal(0, 1, 5000)])
    equal = weighted_conformal_quantile(scores, 0.9)
    recent = weighted_conformal_quantile(scores, 0.9, recency_weights(10_000, 0.05))
    assert equal > 1.8  # between the two halves' 90th percentiles (1.28 and 2.56)
    assert recent == pytest.approx(1.28, abs=0.1)


def _data(seed: int, n: int) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    distance = rng.uniform(0.5, 10, n)
    y = 600 + 150 * distance + rng.gamma(2.0, 40 * distance)
    return pl.DataFrame({"distance_km": distance}), y


def test_refit_trains_again_for_the_rounds_early_stopping_kept() -> None:
    X, y = _data(0, 3000)
    model = QuantileEta(n_estimators=400, early_stopping_rounds=20, n_jobs=1)
    model.fit(X[:2000], y[:2000], eval_set=(X[2000:], y[2000:]))
    rounds = dict(model.rounds_)
    assert all(1 <= r < 400 for r in rounds.values())
    before = model.predict_raw(X[2000:])
    model.refit(X, y)
    assert model.rounds_ == rounds
    assert {q: b.current_iteration() for q, b in model.boosters_.items()} == rounds
    assert not np.allclose(model.predict_raw(X[2000:]), before)
    reloaded = QuantileEta.from_files(model.calibrate(X[2000:], y[2000:]).to_files())
    assert np.array_equal(reloaded.predict(X[:50]), model.predict(X[:50]))


def test_refit_before_fit_is_a_clear_error() -> None:
    X, y = _data(1, 100)
    with pytest.raises(DataError, match="refit: fit the model first"):
        QuantileEta().refit(X, y)


@pytest.mark.parametrize("bad", [0, -1.0, "0.25"])
def test_calib_half_life_is_validated(bad: object) -> None:
    X, y = _data(2, 200)
    with pytest.raises(ConfigError, match="calib_half_life: must be a number > 0 or None"):
        QuantileEta(calib_half_life=bad, n_estimators=5).fit(X, y)  # type: ignore[arg-type]


def _market(rng: np.random.Generator, days: int, per_day: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (P50, P90) predictions and actuals of one marketplace whose spread changes from day
    to day (weather, events, staffing): each day's noise scale is drawn at random."""
    distance = rng.uniform(0.5, 10, days * per_day)
    p50 = 600 + 150 * distance
    gap = 1.2816 * 30 * distance  # the booster's gap for a day of typical spread
    day_scale = np.repeat(rng.lognormal(0.0, 0.35, days), per_day)
    y = p50 + rng.normal(0, 1, days * per_day) * 30 * distance * day_scale
    return np.column_stack([p50, p50 + gap]), y


def test_pooling_the_backtest_window_holds_p90_on_the_next_period() -> None:
    # 40 days: train 26, validation 4 (the first fit's backtest), calibration 4, test 6.
    rng = np.random.default_rng(7)
    per_day, quantiles = 200, (0.5, 0.9)
    cut = {"valid": slice(26 * per_day, 30 * per_day), "calib": slice(30 * per_day, 34 * per_day)}
    errors: dict[str, list[float]] = {"one window": [], "pooled": []}
    for _ in range(300):
        raw, y = _market(rng, 40, per_day)
        test = slice(34 * per_day, None)
        windows = {name: (raw[rows], y[rows]) for name, rows in cut.items()}
        for name, chosen in (("one window", ["calib"]), ("pooled", ["valid", "calib"])):
            offset, scales = fit_calibration([windows[w] for w in chosen], quantiles)
            pred = apply_scales(raw[test], quantiles, scales, offset)
            errors[name].append(abs(float(np.mean(y[test] <= pred[:, 1])) - 0.9))
    within = {name: float(np.mean(np.array(e) <= 0.02)) for name, e in errors.items()}
    assert np.mean(errors["pooled"]) < 0.9 * np.mean(errors["one window"])
    assert within["pooled"] > within["one window"] + 0.05


def test_one_window_calibrates_as_before_and_the_last_window_sets_the_shift() -> None:
    rng = np.random.default_rng(3)
    raw = np.column_stack([np.full(500, 600.0), np.full(500, 700.0)])
    old_y, new_y = rng.normal(650, 50, 500), rng.normal(580, 50, 500)
    offset, scales = fit_calibration([(raw, new_y)], (0.5, 0.9))
    assert offset == fit_anchor_offset(raw, new_y, (0.5, 0.9))
    assert scales == fit_scales(raw, new_y, (0.5, 0.9), offset)
    pooled_offset, pooled = fit_calibration([(raw, old_y), (raw, new_y)], (0.5, 0.9))
    assert pooled_offset == offset  # the serving model's own window
    # each window's residuals are taken around its own shifted anchor: the level change
    # between the windows does not widen the P90
    assert pooled[0.9] == pytest.approx(scales[0.9], rel=0.1)


# Orders per local hour (lunch and dinner peaks) and the spread of each hour that the
# booster's gap does not capture (busy kitchens and roads at the peaks).
_RATE = np.array([1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 8, 10, 14, 14, 9, 7, 7, 9, 14, 16, 14, 9, 5, 2])
_PEAK = np.isin(np.arange(24), [11, 12, 13, 18, 19, 20, 21])
_SPREAD = np.where(_PEAK, 1.5, 0.8)


def _daily_market(
    rng: np.random.Generator, days: int, per_day: int
) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """Creation times, raw (P50, P90) and actuals of a marketplace with a daily cycle, whose
    spread also changes a little from day to day."""
    day = np.repeat(np.arange(days), per_day)
    hour = rng.choice(24, size=day.size, p=_RATE / _RATE.sum())
    seconds = np.sort(day * 86_400 + hour * 3600 + rng.uniform(0, 3600, day.size))
    day, hour = (seconds // 86_400).astype(int), ((seconds % 86_400) // 3600).astype(int)
    distance = rng.uniform(0.5, 10, day.size)
    p50 = 600 + 150 * distance
    spread = 30 * distance * _SPREAD[hour] * rng.lognormal(0.0, 0.1, days)[day]
    y = p50 + rng.normal(0, 1, day.size) * spread
    start_us = 1_740_960_000_000_000  # 2025-03-03 00:00 UTC
    created = pl.from_epoch(
        pl.Series("created_at", start_us + (seconds * 1e6).astype(np.int64)), time_unit="us"
    ).dt.replace_time_zone("UTC")
    return created, np.column_stack([p50, p50 + 1.2816 * 30 * distance]), y


def test_whole_days_hold_p90_on_the_next_period_better_than_a_share_of_orders() -> None:
    # One week; the test period is the latest 15 % of the orders (about the last day). The
    # 10 % share before it is most of one afternoon and evening, heavy in dinner peaks;
    # the whole-day window ("auto": 1 day here) holds every hour as the test period does.
    rng = np.random.default_rng(11)
    quantiles = (0.5, 0.9)
    errors: dict[str, list[float]] = {"share": [], "days": []}
    windows = {"share": SplitFractions(calib_days=None), "days": SplitFractions(calib_days="auto")}
    for _ in range(100):
        created, raw, y = _daily_market(rng, 7, 1500)
        for name, fractions in windows.items():
            split = make_split(created, fractions=fractions)
            offset, scales = fit_calibration([(raw[split.calib], y[split.calib])], quantiles)
            pred = apply_scales(raw[split.test], quantiles, scales, offset)
            errors[name].append(float(np.mean(y[split.test] <= pred[:, 1])) - 0.9)
    share, days = np.array(errors["share"]), np.array(errors["days"])
    assert abs(days.mean()) < 0.01 < share.mean()  # the share over-covers on average
    assert np.mean(np.abs(days) <= 0.02) > np.mean(np.abs(share) <= 0.02) + 0.1
