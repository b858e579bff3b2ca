"""Offline evaluation metrics, checked against values computed by hand on tiny arrays."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl
import pytest

from arrive.errors import ConfigError, DataError
from arrive.evaluation import (
    EvalInput,
    coverage_by_quantile,
    evaluate,
    metrics_json,
    quantile_key,
)

Y = [100.0, 200.0, 300.0, 400.0]
# columns: P50, P90. Errors of P50: -10, 10, -30, 0. Row 2 crosses (P90 290 < P50 330).
MODEL = [[110.0, 150.0], [190.0, 250.0], [330.0, 290.0], [400.0, 450.0]]
HEURISTIC = [[250.0, 350.0]] * 4
TIMES = np.array(
    ["2024-03-01T08:05", "2024-03-01T08:55", "2024-03-01T23:10", "2024-03-02T01:00"],
    dtype="datetime64[us]",
)


def _input(**changes: Any) -> EvalInput:
    fields: dict[str, Any] = {
        "y_true_s": Y,
        "pred_s": MODEL,
        "heuristic_s": HEURISTIC,
        "quantiles": (0.5, 0.9),
        "created_at": TIMES,
        "segments": {"market": np.array(["a", "b", "a", "b"])},
    }
    return EvalInput(**(fields | changes))


def test_overall_model_metrics_match_hand_computed_values() -> None:
    model = evaluate(_input()).model

    assert model.n == 4
    assert model.mae_s == 12.5
    assert model.rmse_s == pytest.approx(math.sqrt(275.0), abs=1e-12)
    assert model.at(0.5).pinball_s == 6.25
    # P90 residuals -50, -50, 10, -50 -> losses 5, 5, 9, 5
    assert model.at(0.9).pinball_s == pytest.approx(6.0, abs=1e-12)
    assert model.at(0.5).coverage == 0.75
    assert model.at(0.9).coverage == 0.75
    assert model.late_rate == 0.25
    assert model.width_s == 27.5
    assert model.crossings == 1


def test_heuristic_is_scored_side_by_side() -> None:
    result = evaluate(_input())

    assert result.heuristic.mae_s == 100.0
    assert result.heuristic.rmse_s == pytest.approx(math.sqrt(12500.0), abs=1e-12)
    assert result.heuristic.at(0.9).coverage == 0.75
    assert result.heuristic.late_rate == 0.25
    assert result.heuristic.width_s == 100.0
    assert result.heuristic.crossings == 0
    assert result.mae_improvement == pytest.approx(0.875, abs=1e-12)


def test_quantile_columns_are_looked_up_by_value_not_position() -> None:
    swapped = _input(
        pred_s=[row[::-1] for row in MODEL],
        heuristic_s=[row[::-1] for row in HEURISTIC],
        quantiles=(0.9, 0.5),
    )

    assert evaluate(swapped) == evaluate(_input())


def test_crossings_count_rows_not_pairs() -> None:
    # Row 0 crosses twice (P10 > P50 > P90), row 1 once (P10 > P50), rows 2-3 not at all.
    pred = [[300.0, 200.0, 100.0], [250.0, 200.0, 260.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]
    data = _input(pred_s=pred, heuristic_s=pred, quantiles=(0.1, 0.5, 0.9))

    assert evaluate(data).model.crossings == 2


def test_segment_breakdown_per_value_largest_first() -> None:
    data = _input(segments={"market": np.array(["b", "a", "b", "b"])})
    rows = evaluate(data).segments["market"]

    assert [(row.value, row.n) for row in rows] == [("b", 3), ("a", 1)]
    b, a = rows
    assert b.model.mae_s == pytest.approx((10 + 30 + 0) / 3, abs=1e-12)
    assert b.model.coverage_p90 == pytest.approx(2 / 3, abs=1e-12)
    assert b.model.late_rate == pytest.approx(1 / 3, abs=1e-12)
    assert b.heuristic.mae_s == pytest.approx((150 + 50 + 150) / 3, abs=1e-12)
    assert (a.model.mae_s, a.model.coverage_p90, a.heuristic.mae_s) == (10.0, 1.0, 50.0)


def test_segment_ties_are_ordered_by_label_and_nulls_are_labelled() -> None:
    labels = pl.Series(["z", None, "z", None])
    rows = evaluate(_input(segments={"store": labels})).segments["store"]

    assert [(row.value, row.n) for row in rows] == [("(missing)", 2), ("z", 2)]


def test_no_segments_gives_an_empty_breakdown() -> None:
    assert evaluate(_input(segments={})).segments == {}


def test_by_hour_is_in_hour_order_and_in_utc() -> None:
    plus_five = timezone(timedelta(hours=5))
    times = [datetime(2024, 3, 1, h, 30, tzinfo=plus_five) for h in (13, 6, 6, 8)]
    rows = evaluate(_input(created_at=times)).by_hour

    assert [(row.value, row.n) for row in rows] == [("01", 2), ("03", 1), ("08", 1)]
    assert rows[0].model.mae_s == 20.0  # rows 1 and 2: errors 10 and 30


def test_nan_prediction_is_an_error_naming_the_row_count() -> None:
    pred = [list(row) for row in MODEL]
    pred[1][1] = math.nan
    pred[3][0] = math.nan

    with pytest.raises(DataError, match=r"pred_s: 2 of 4 rows .*NaN.*first: row 1"):
        evaluate(_input(pred_s=pred))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("y_true_s", [100.0, math.inf, 300.0, 400.0], r"y_true_s: 1 of 4 rows"),
        ("heuristic_s", [[250.0, math.nan]] * 4, r"heuristic_s: 4 of 4 rows"),
        ("y_true_s", [], r"no rows"),
        ("pred_s", [[1.0, 2.0]] * 3, r"pred_s: expected shape \(4, 2\)"),
        ("created_at", TIMES[:3], r"created_at: 3 values for 4 rows"),
        ("created_at", [1, 2, 3, 4], r"created_at: expected datetimes"),
        ("created_at", pl.Series([datetime(2024, 1, 1), None, None, None]), r"3 of 4 rows"),
        ("segments", {"market": ["a", "b"]}, r"segments\['market'\]: 2 labels for 4 rows"),
    ],
)
def test_bad_data_is_refused_with_the_place_and_reason(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        evaluate(_input(**{field: value}))


@pytest.mark.parametrize(
    ("quantiles", "message"),
    [
        ((0.5, 0.8), r"0.9 is required"),
        ((0.5, 0.5), r"distinct"),
        ((0.5, 1.0), r"in \(0, 1\)"),
    ],
)
def test_bad_quantiles_are_refused(quantiles: tuple[float, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        evaluate(_input(quantiles=quantiles))


def test_metrics_json_has_the_flat_keys_and_is_json() -> None:
    flat = metrics_json(evaluate(_input()))

    assert flat["n_test"] == 4
    assert flat["mae_s"] == 12.5
    assert flat["heuristic_mae_s"] == 100.0
    assert flat["coverage_p50"] == 0.75
    assert flat["coverage_p90"] == 0.75
    assert flat["heuristic_coverage_p90"] == 0.75
    assert flat["late_rate"] == flat["heuristic_late_rate"] == 0.25
    assert flat["crossings"] == 1
    assert flat["pinball_p50"] == 6.25
    assert flat["width_s"] == 27.5
    assert flat["heuristic_rmse_s"] == pytest.approx(math.sqrt(12500.0), abs=1e-12)
    assert flat["mae_improvement"] == pytest.approx(0.875, abs=1e-12)
    assert {"rmse_s", "pinball_p90"} <= flat.keys()
    assert json.loads(json.dumps(flat)) == flat


def test_improvement_is_none_when_the_heuristic_is_perfect() -> None:
    perfect = [[y, y + 10] for y in Y]
    flat = metrics_json(evaluate(_input(heuristic_s=perfect)))

    assert flat["heuristic_mae_s"] == 0.0
    assert flat["mae_improvement"] is None


def test_result_to_dict_is_json_able() -> None:
    result = evaluate(_input())
    data = json.loads(json.dumps(result.to_dict()))

    assert data["model"]["mae_s"] == 12.5
    assert data["segments"]["market"][0]["value"] == "a"
    assert data["by_hour"][0] == {
        "value": "01",
        "n": 1,
        "model": {
            "mae_s": 0.0,
            "coverage_p90": 1.0,
            "late_rate": 0.0,
            "mae_low_s": 0.0,
            "mae_high_s": 0.0,
        },
        "heuristic": {
            "mae_s": 150.0,
            "coverage_p90": 0.0,
            "late_rate": 1.0,
            "mae_low_s": 150.0,
            "mae_high_s": 150.0,
        },
    }


def test_maes_carry_their_95_percent_interval() -> None:
    result = evaluate(_input())
    # absolute errors of P50: 10, 10, 30, 0 -> mean 12.5, sample sd sqrt(475/3)
    half = 1.959963984540054 * math.sqrt(475 / 3) / 2
    assert result.model.mae_low_s == pytest.approx(12.5 - half)
    assert result.model.mae_high_s == pytest.approx(12.5 + half)
    # market "a" is rows 0 and 2: errors 10 and 30 -> mean 20, sd sqrt(200)
    a = next(row for row in result.segments["market"] if row.value == "a")
    half_a = 1.959963984540054 * math.sqrt(200) / math.sqrt(2)
    assert (a.model.mae_low_s, a.model.mae_high_s) == pytest.approx((20 - half_a, 20 + half_a))
    flat = metrics_json(result)
    assert flat["mae_ci95_low_s"] == result.model.mae_low_s
    assert flat["heuristic_mae_ci95_high_s"] == result.heuristic.mae_high_s


def test_coverage_by_quantile_for_the_reliability_plot() -> None:
    pred = [[50.0, 110.0, 500.0], [250.0, 190.0, 500.0], [50.0, 330.0, 500.0], [50.0, 400.0, 1.0]]

    assert coverage_by_quantile(Y, pred, (0.1, 0.5, 0.9)) == {0.1: 0.25, 0.5: 0.75, 0.9: 0.75}


@pytest.mark.parametrize(
    ("quantile", "key"), [(0.5, "p50"), (0.9, "p90"), (0.975, "p97.5"), (0.1, "p10")]
)
def test_quantile_key(quantile: float, key: str) -> None:
    assert quantile_key(quantile) == key


def test_an_mae_interval_never_goes_below_zero() -> None:
    # market "b" holds errors 10 and 0: the normal interval would reach below 0
    b = next(row for row in evaluate(_input()).segments["market"] if row.value == "b")
    assert b.model.mae_low_s == 0.0
    assert b.model.mae_high_s > b.model.mae_s == 5.0
