"""HeuristicEta: back-off, support thresholds, null keys, persistence, errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrive.errors import ConfigError, DataError, InputFileError, InternalError
from arrive.fallback import DEFAULT_LEVELS, HeuristicEta, level_name

LEVELS = [("store_id", "hour"), ("store_id",), ("market_id",), ()]


def _q(values: list[float], qs: tuple[float, ...] = (0.5, 0.9)) -> np.ndarray:
    return np.quantile(np.asarray(values, dtype=np.float64), qs)


def _rows(*groups: tuple[int | None, int | None, str | None, list[float]]) -> pl.DataFrame:
    """One training row per duration, keyed (store_id, hour, market_id)."""
    out: dict[str, list[Any]] = {"store_id": [], "hour": [], "market_id": [], "duration_s": []}
    for store, hour, market, durations in groups:
        for duration in durations:
            out["store_id"].append(store)
            out["hour"].append(hour)
            out["market_id"].append(market)
            out["duration_s"].append(duration)
    return pl.DataFrame(
        out,
        schema={
            "store_id": pl.Int64,
            "hour": pl.Int8,
            "market_id": pl.String,
            "duration_s": pl.Float64,
        },
    )


S1_H12 = [100.0, 200.0, 300.0]
S1_H13 = [1000.0, 1100.0]
S2 = [50.0, 60.0]
S3_B = [400.0, 500.0, 600.0]
S1_NULL_HOUR = [700.0]


@pytest.fixture
def train() -> pl.DataFrame:
    return _rows(
        (1, 12, "a", S1_H12),
        (1, 13, "a", S1_H13),
        (1, None, "a", S1_NULL_HOUR),
        (2, 12, "a", S2),
        (3, 12, "b", S3_B),
    )


@pytest.fixture
def eta(train: pl.DataFrame) -> HeuristicEta:
    return HeuristicEta(levels=LEVELS, min_count=3).fit(train)


def _query(store: int | None, hour: int | None, market: str | None) -> dict[str, Any]:
    return {"store_id": store, "hour": hour, "market_id": market}


def _frame(queries: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        queries, schema={"store_id": pl.Int64, "hour": pl.Int64, "market_id": pl.String}
    )


# -- back-off ---------------------------------------------------------------------------------


CASES = [
    # (query, level that answers, the durations it summarises)
    (_query(1, 12, "a"), "store_id+hour", S1_H12),
    (_query(1, 13, "a"), "store_id", S1_H12 + S1_H13 + S1_NULL_HOUR),  # 2 rows at 13: too few
    (_query(2, 12, "a"), "market_id", S1_H12 + S1_H13 + S1_NULL_HOUR + S2),  # store 2 has 2
    (_query(3, 12, "b"), "store_id+hour", S3_B),
    (_query(9, 12, "b"), "market_id", S3_B),
    (_query(9, 0, "zz"), "global", S1_H12 + S1_H13 + S1_NULL_HOUR + S2 + S3_B),
]


@pytest.mark.parametrize(("query", "level", "durations"), CASES)
def test_backoff_answers_with_the_most_specific_level_with_enough_support(
    eta: HeuristicEta, query: dict[str, Any], level: str, durations: list[float]
) -> None:
    preds, answered = eta.predict_with_level(_frame([query]))
    np.testing.assert_allclose(preds[0], _q(durations), rtol=1e-12)
    assert eta.level_names_[answered[0]] == level
    one, name = eta.predict_one(query)
    assert name == level
    np.testing.assert_array_equal(one, preds[0])


def test_predict_vectorised_matches_each_case(eta: HeuristicEta) -> None:
    preds, answered = eta.predict_with_level(_frame([q for q, _, _ in CASES]))
    assert preds.shape == (len(CASES), 2)
    assert [eta.level_names_[i] for i in answered] == [level for _, level, _ in CASES]
    np.testing.assert_array_equal(eta.predict(_frame([q for q, _, _ in CASES])), preds)


def test_min_count_per_level_and_exact_threshold(train: pl.DataFrame) -> None:
    # store 1 at hour 12 has exactly 3 rows: kept at 3, refused at 4.
    at_three = HeuristicEta(levels=LEVELS, min_count=[3, 100, 100, 1]).fit(train)
    at_four = HeuristicEta(levels=LEVELS, min_count=[4, 100, 7, 1]).fit(train)
    query = _query(1, 12, "a")
    assert at_three.predict_one(query)[1] == "store_id+hour"
    assert at_four.predict_one(query)[1] == "market_id"  # market a has 8 rows >= 7
    assert at_four.predict_one(_query(3, 12, "b"))[1] == "global"  # market b has 3 < 7
    assert at_four.dropped_levels_ == {
        ("store_id", "hour"): "no segment has min_count=4 training rows",
        ("store_id",): "no segment has min_count=100 training rows",
    }
    assert at_four.levels_ == (("market_id",), ())
    assert at_four.tables_[0]["__heuristic_n"].to_list() == [8]


def test_global_level_respects_min_count_over_all_rows(train: pl.DataFrame) -> None:
    with pytest.raises(DataError, match=r"duration_s: 11 training rows.*min_count=12"):
        HeuristicEta(levels=LEVELS, min_count=12).fit(train)


# -- null keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "level"),
    [
        (_query(1, None, "a"), "store_id"),
        (_query(None, 12, "a"), "market_id"),
        (_query(None, None, None), "global"),
        ({"market_id": "b"}, "market_id"),  # predict_one: a missing key is a null key
    ],
)
def test_null_key_skips_the_levels_that_use_it(
    eta: HeuristicEta, query: dict[str, Any], level: str
) -> None:
    assert eta.predict_one(query)[1] == level
    full = _query(None, None, None) | query
    _, answered = eta.predict_with_level(_frame([full]))
    assert eta.level_names_[answered[0]] == level


def test_rows_with_null_keys_do_not_form_segments(train: pl.DataFrame) -> None:
    with_null_hour = _rows((1, None, "a", [1.0] * 10), (1, 12, "a", [5.0]))
    eta = HeuristicEta(levels=LEVELS, min_count=3).fit(pl.concat([train, with_null_hour]))
    hours = eta.tables_[0]["hour"].to_list()
    assert None not in hours
    assert eta.tables_[0].filter(store_id=1, hour=12)["__heuristic_n"].item() == 4


def test_all_null_prediction_column_skips_its_levels(eta: HeuristicEta) -> None:
    frame = pl.DataFrame({"store_id": [1, 2], "hour": [None, None], "market_id": ["a", "a"]})
    assert frame.schema["hour"] == pl.Null
    _, answered = eta.predict_with_level(frame)
    assert [eta.level_names_[i] for i in answered] == ["store_id", "market_id"]


# -- dropped levels ---------------------------------------------------------------------------


def test_absent_and_all_null_columns_drop_their_levels_and_are_reported(
    train: pl.DataFrame,
) -> None:
    frame = train.with_columns(pl.lit(None, dtype=pl.String).alias("store_category"))
    eta = HeuristicEta(min_count=3).fit(frame.drop("market_id"))
    assert eta.dropped_levels_ == {
        ("market_id", "store_category", "hour"): "column market_id absent from the training frame",
        ("market_id", "hour"): "column market_id absent from the training frame",
        ("market_id",): "column market_id absent from the training frame",
    }
    eta = HeuristicEta(min_count=3).fit(frame)
    assert eta.dropped_levels_[("market_id", "store_category", "hour")] == (
        "column store_category entirely null in the training frame"
    )
    assert "store_category" not in eta.key_kinds_
    assert eta.level_names_ == (
        "store_id+hour",
        "store_id",
        "market_id+hour",
        "market_id",
        "global",
    )
    # the dropped column is not needed to predict
    assert eta.predict(_frame([_query(1, 12, "a")])).shape == (1, 2)


def test_global_answers_unseen_keys_with_all_rows(eta: HeuristicEta, train: pl.DataFrame) -> None:
    preds, name = eta.predict_one(_query(404, 23, "nowhere"))
    assert name == "global"
    np.testing.assert_allclose(preds, _q(train["duration_s"].to_list()), rtol=1e-12)


# -- quantiles --------------------------------------------------------------------------------


def test_more_quantiles_are_ordered_and_never_cross(train: pl.DataFrame) -> None:
    qs = (0.1, 0.5, 0.9, 0.99)
    eta = HeuristicEta(levels=LEVELS, min_count=3, quantiles=qs).fit(train)
    preds = eta.predict(_frame([q for q, _, _ in CASES]))
    assert preds.shape == (len(CASES), 4)
    assert (np.diff(preds, axis=1) >= 0).all()
    np.testing.assert_allclose(preds[0], _q(S1_H12, qs), rtol=1e-12)


def test_returned_arrays_cannot_corrupt_the_model(eta: HeuristicEta) -> None:
    preds, _ = eta.predict_one(_query(1, 12, "a"))
    with pytest.raises(ValueError, match="read-only"):
        preds[0] = 0.0


# -- property: predict and predict_one agree -------------------------------------------------

STORES = st.one_of(st.none(), st.integers(0, 6))
HOURS = st.one_of(st.none(), st.integers(0, 3))
MARKETS = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))


@st.composite
def _keyed_frames(draw: st.DrawFn, min_size: int, with_target: bool) -> pl.DataFrame:
    n = draw(st.integers(min_size, 40))
    data: dict[str, list[Any]] = {
        "store_id": draw(st.lists(STORES, min_size=n, max_size=n)),
        "hour": draw(st.lists(HOURS, min_size=n, max_size=n)),
        "market_id": draw(st.lists(MARKETS, min_size=n, max_size=n)),
    }
    if with_target:
        durations = st.floats(0, 1e4, allow_nan=False, allow_infinity=False)
        data["duration_s"] = draw(st.lists(durations, min_size=n, max_size=n))
    return pl.DataFrame(data)


@settings(max_examples=60, deadline=None)
@given(
    train=_keyed_frames(min_size=5, with_target=True),
    queries=_keyed_frames(min_size=0, with_target=False),
    min_count=st.integers(1, 5),
)
def test_predict_and_predict_one_agree_on_every_row(
    train: pl.DataFrame, queries: pl.DataFrame, min_count: int
) -> None:
    eta = HeuristicEta(levels=LEVELS, min_count=min_count, quantiles=(0.25, 0.5, 0.9)).fit(train)
    preds, answered = eta.predict_with_level(queries)
    assert preds.shape == (queries.height, 3)
    assert (answered >= 0).all()
    assert (np.diff(preds, axis=1) >= 0).all()
    for i, row in enumerate(queries.iter_rows(named=True)):
        one, name = eta.predict_one(row)
        assert name == eta.level_names_[answered[i]]
        np.testing.assert_array_equal(one, preds[i])


# -- persistence and determinism -------------------------------------------------------------


@pytest.mark.parametrize("min_count", [3, [3, 3, 4, 1]])
def test_to_dict_round_trips_exactly_through_json(train: pl.DataFrame, min_count: Any) -> None:
    frame = train.with_columns(pl.col("market_id").cast(pl.Categorical))
    eta = HeuristicEta(levels=LEVELS, min_count=min_count, quantiles=(0.5, 0.8, 0.9)).fit(frame)
    data = eta.to_dict()
    back = HeuristicEta.from_dict(json.loads(json.dumps(data)))
    assert back.to_dict() == data
    assert back.get_params() == {
        "levels": tuple(tuple(level) for level in LEVELS),
        "min_count": min_count if isinstance(min_count, int) else tuple(min_count),
        "quantiles": (0.5, 0.8, 0.9),
    }
    for ours, theirs in zip(eta.tables_, back.tables_, strict=True):
        assert ours.equals(theirs)
    queries = _frame([q for q, _, _ in CASES])
    np.testing.assert_array_equal(back.predict(queries), eta.predict(queries))
    assert back.dropped_levels_ == eta.dropped_levels_
    assert back.predict_one(_query(1, 12, "a"))[1] == "store_id+hour"


def test_fit_is_deterministic_whatever_the_row_order(train: pl.DataFrame) -> None:
    a = HeuristicEta(levels=LEVELS, min_count=2).fit(train).to_dict()
    b = HeuristicEta(levels=LEVELS, min_count=2).fit(
        train.sample(fraction=1.0, shuffle=True, seed=7)
    )
    assert b.to_dict() == a


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(format="other"), "not a arrive.fallback.HeuristicEta"),
        (lambda d: d.update(format_version=99), "format_version 99"),
        (lambda d: d.pop("levels"), "malformed"),
        (lambda d: d["params"].update(quantiles=[0.9, 0.5]), "malformed.*quantiles"),
        (lambda d: d["levels"][0]["quantiles_s"].reverse(), "crossing"),
        (lambda d: d["levels"][0]["keys"].update(store_id=["x"]), "malformed"),
    ],
)
def test_from_dict_refuses_malformed_data(eta: HeuristicEta, mutate: Any, match: str) -> None:
    data = json.loads(json.dumps(eta.to_dict()))
    mutate(data)
    with pytest.raises(InputFileError, match=match):
        HeuristicEta.from_dict(data)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"levels": []}, "^levels:"),
        ({"levels": "store_id"}, "^levels:"),
        ({"levels": [("store_id",)]}, "^levels: the last level must be the global"),
        ({"levels": [(), ()]}, "^levels: a level appears more than once"),
        ({"levels": ["store_id", ()]}, r"^levels\[0\]"),
        ({"levels": [("a", "a"), ()]}, r"^levels\[0\]: a column appears more than once"),
        ({"levels": [(1,), ()]}, r"^levels\[0\]"),
        ({"min_count": 0}, "^min_count:"),
        ({"min_count": 2.5}, "^min_count:"),
        ({"min_count": True}, "^min_count:"),
        ({"min_count": [3, 3]}, r"^min_count: expected an int >= 1 or one per level \(4\)"),
        ({"quantiles": []}, "^quantiles:"),
        ({"quantiles": (0.9, 0.5)}, "^quantiles: need strictly increasing"),
        ({"quantiles": (0.5, 0.5)}, "^quantiles: need strictly increasing"),
        ({"quantiles": (0.0, 0.5)}, "^quantiles:"),
        ({"quantiles": (0.5, 1.0)}, "^quantiles:"),
        ({"quantiles": ("0.5",)}, "^quantiles:"),
    ],
)
def test_bad_params_raise_config_error_naming_them(
    train: pl.DataFrame, params: dict[str, Any], match: str
) -> None:
    eta = HeuristicEta(**{"levels": LEVELS, "min_count": 3} | params)
    assert eta.get_params()["levels"] is (params.get("levels", LEVELS))  # stored unchanged
    with pytest.raises(ConfigError, match=match):
        eta.fit(train)


@pytest.mark.parametrize(
    ("frame", "target", "error", "match"),
    [
        (
            pl.DataFrame({"x": [1.0] * 5}),
            "duration_s",
            DataError,
            "duration_s: the training frame has no such column",
        ),
        (
            pl.DataFrame({"duration_s": ["1"] * 5}),
            "duration_s",
            DataError,
            "expected seconds as numbers",
        ),
        (
            pl.DataFrame({"duration_s": [1.0, None, 2.0]}),
            "duration_s",
            DataError,
            r"1 values are null \(first at row 1\)",
        ),
        (
            pl.DataFrame({"duration_s": [1.0, 2.0, float("nan")]}),
            "duration_s",
            DataError,
            r"not finite \(first at row 2\)",
        ),
        (
            pl.DataFrame({"duration_s": [1.0, -2.0, -3.0]}),
            "duration_s",
            DataError,
            r"2 values are negative \(first at row 1\)",
        ),
        (
            pl.DataFrame({"store_id": [1], "duration_s": [1.0]}),
            "store_id",
            ConfigError,
            "target: 'store_id' is also a key",
        ),
        (pl.DataFrame({"duration_s": [1.0]}), "", ConfigError, "^target:"),
    ],
)
def test_bad_frames_are_refused_with_the_place_and_reason(
    frame: pl.DataFrame, target: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        HeuristicEta(levels=[("store_id",), ()], min_count=1).fit(frame, target=target)


def test_unsupported_key_dtype_is_refused() -> None:
    frame = pl.DataFrame({"store_id": [1.0, 2.0], "duration_s": [1.0, 2.0]})
    with pytest.raises(DataError, match="store_id: dtype Float64 cannot be a segment key"):
        HeuristicEta(levels=[("store_id",), ()], min_count=1).fit(frame)


def test_unfitted_estimator_refuses_to_predict() -> None:
    eta = HeuristicEta()
    with pytest.raises(InternalError, match="not fitted"):
        eta.predict_one({})
    with pytest.raises(InternalError, match="not fitted"):
        eta.predict(_frame([]))
    with pytest.raises(InternalError, match="not fitted"):
        eta.to_dict()


def test_prediction_frame_must_match_training_keys(eta: HeuristicEta) -> None:
    with pytest.raises(DataError, match="hour: key column absent"):
        eta.predict(pl.DataFrame({"store_id": [1], "market_id": ["a"]}))
    with pytest.raises(
        DataError, match="store_id: dtype String does not match the training key kind int"
    ):
        eta.predict(pl.DataFrame({"store_id": ["1"], "hour": [1], "market_id": ["a"]}))
    with pytest.raises(DataError, match="predict: expected a polars DataFrame"):
        eta.predict({"store_id": [1]})  # type: ignore[arg-type]


def test_predict_one_refuses_a_key_of_the_wrong_kind(eta: HeuristicEta) -> None:
    with pytest.raises(DataError, match="store_id: '1' is not of the training key kind int"):
        eta.predict_one(_query("1", 12, "a"))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="unhashable"):
        eta.predict_one({"store_id": [1], "hour": 12})
    # numpy scalars are fine
    assert eta.predict_one(_query(np.int64(1), np.int32(12), "a"))[1] == "store_id+hour"  # type: ignore[arg-type]


# -- real data (fixture only: the partial DoorDash file is not a benchmark) -------------------


def test_fits_the_doordash_sample(doordash_csv: Path) -> None:
    with gzip.open(doordash_csv) as fh:
        raw = pl.read_csv(
            fh.read(),
            null_values="NA",
            schema_overrides={"market_id": pl.String, "store_id": pl.String},
        )
    frame = raw.select(
        "store_id",
        "market_id",
        store_category=pl.col("store_primary_category"),
        hour=pl.col("created_at").str.to_datetime().dt.hour(),  # UTC hour is enough here
        duration_s=(
            pl.col("actual_delivery_time").str.to_datetime()
            - pl.col("created_at").str.to_datetime()
        ).dt.total_seconds(),
    ).drop_nulls("duration_s")
    eta = HeuristicEta(levels=DEFAULT_LEVELS).fit(frame)
    preds, answered = eta.predict_with_level(frame)
    assert eta.dropped_levels_ == {}
    assert set(answered.tolist()) == set(range(len(DEFAULT_LEVELS)))
    assert (preds[:, 1] >= preds[:, 0]).all()
    coverage = float((frame["duration_s"].to_numpy() <= preds[:, 1]).mean())
    assert 0.85 < coverage < 0.95  # in-sample P90 covers about 90 %
    assert level_name(("store_id", "hour")) in eta.level_names_


# -- calibration ------------------------------------------------------------------------------


def _stores(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Stores whose durations spread widely; the heuristic sees 40 orders of most of them."""
    store = rng.integers(0, 200, n)
    duration = 1200.0 + 30.0 * (store % 10) + rng.gamma(1.5, 300.0, n)
    return pl.DataFrame({"store_id": store, "duration_s": duration})


def test_calibrate_scales_the_p90_gap_so_new_orders_are_covered() -> None:
    rng = np.random.default_rng(5)
    train, window, later = _stores(rng, 8000), _stores(rng, 4000), _stores(rng, 40_000)
    y = later.get_column("duration_s").to_numpy()
    levels = [("store_id",), ()]
    as_fitted = HeuristicEta(levels, min_count=20).fit(train)
    before = as_fitted.predict(later)
    calibrated = HeuristicEta(levels, min_count=20).fit(train).calibrate(window)
    after = calibrated.predict(later)
    # segment P90s from 40 orders each under-cover new orders; the scale corrects that
    assert abs(float(np.mean(y <= after[:, 1])) - 0.9) < 0.01
    assert abs(float(np.mean(y <= before[:, 1])) - 0.9) > 2 * abs(
        float(np.mean(y <= after[:, 1])) - 0.9
    )
    np.testing.assert_array_equal(after[:, 0], before[:, 0])  # the P50 stays the median
    assert calibrated.scales_[0.9] != 1.0
    assert as_fitted.scales_ == {}
    assert (
        calibrated.predict_one({"store_id": 3})[0][1]
        == after[later["store_id"].to_list().index(3), 1]
    )
    back = HeuristicEta.from_dict(json.loads(json.dumps(calibrated.to_dict())))
    np.testing.assert_array_equal(back.predict(later), after)
    assert back.scales_ == calibrated.scales_


def test_calibrate_with_a_reference_takes_the_scale_it_finds() -> None:
    rng = np.random.default_rng(6)
    train, window = _stores(rng, 6000), _stores(rng, 3000)
    levels = [("store_id",), ()]
    reference = HeuristicEta(levels, min_count=20).fit(train)
    judged_alone = HeuristicEta(levels, min_count=20).fit(train).calibrate(window)
    final = HeuristicEta(levels, min_count=20).fit(pl.concat([train, window]))
    final.calibrate(window, reference=reference)
    assert final.scales_ == judged_alone.scales_


def test_calibrate_needs_50_rows_with_the_target(eta: HeuristicEta, train: pl.DataFrame) -> None:
    with pytest.raises(DataError, match="calibrate: needs at least 50 rows with duration_s"):
        eta.calibrate(train)
