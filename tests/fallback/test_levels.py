"""The heuristic's levels come from the data's own attributes, chosen on validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from arrive.errors import ConfigError, DataError
from arrive.fallback import DEFAULT_LEVELS, HeuristicEta, choose_levels, key_columns
from arrive.schema.events import OrderCreated
from arrive.serving.slot import HeuristicAnswer

TRAFFIC = {"Low": 900.0, "Medium": 1300.0, "High": 1700.0, "Jam": 2300.0}
WEATHER = {"Sunny": 1.0, "Fog": 1.25, "Stormy": 1.4}
START = datetime(2025, 3, 3, tzinfo=UTC)


def _orders(n: int, seed: int, *, store_effect_s: float = 0.0) -> pl.DataFrame:
    """Orders whose duration depends on traffic x weather (and stores, when asked)."""
    rng = np.random.default_rng(seed)
    traffic = rng.choice(list(TRAFFIC), n)
    weather = rng.choice(list(WEATHER), n)
    store = rng.integers(0, 40, n)
    duration = np.array([TRAFFIC[t] * WEATHER[w] for t, w in zip(traffic, weather, strict=True)])
    duration += store_effect_s * (store % 5) + rng.normal(0, 120, n)
    return pl.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "created_at": [START + timedelta(minutes=i) for i in range(n)],
            "store_id": [f"s{s}" for s in store],
            "market_id": ["m1"] * n,
            "store_category": [None] * n,
            "courier_id": [f"c{i % 7}" for i in range(n)],
            "traffic": traffic,
            "weather": weather,
            "noise": rng.integers(0, 8, n),
            "rating": rng.uniform(1, 5, n),
            "hour": (np.arange(n) // 60) % 24,
            "duration_s": np.clip(duration, 60, None),
        },
        schema_overrides={"store_category": pl.String},
    )


def _mae(levels: tuple[tuple[str, ...], ...], train: pl.DataFrame, test: pl.DataFrame) -> float:
    usable = [lv for lv in levels if all(c in train.columns for c in lv)]
    pred = HeuristicEta(usable).fit(train).predict(test)[:, 0]
    return float(np.abs(pred - test.get_column("duration_s").to_numpy()).mean())


def test_key_columns_are_the_request_time_keys_of_the_data() -> None:
    columns = key_columns(_orders(100, 0))
    # ids of one order or courier, float attributes, all-null columns and the target are not keys
    assert columns == ["store_id", "market_id", "traffic", "weather", "noise", "hour"]


def test_levels_are_chosen_from_the_attributes_that_predict() -> None:
    frame = _orders(6000, 1)
    train, valid, test = frame[:4000], frame[4000:5000], frame[5000:]
    choice = choose_levels(train, valid, key_columns(frame))
    assert set(choice.levels[0]) >= {"traffic", "weather"}
    assert choice.levels[-1] == ()
    assert all(b < a for a, b in pairwise(choice.mae_s))
    chosen = _mae(choice.levels, frame[:5000], test)
    fixed = _mae(DEFAULT_LEVELS, frame[:5000], test)
    assert chosen < 0.6 * fixed


def test_a_level_without_min_support_is_never_chosen() -> None:
    frame = _orders(2500, 2)
    # "code" alone sets the duration, and each of its 200 values has 10 training rows
    code = np.arange(2500) % 200
    frame = frame.with_columns(code=pl.Series(code), duration_s=pl.Series(600.0 + 10.0 * code))
    train, valid = frame[:2000], frame[2000:]
    strict = choose_levels(train, valid, ["code", "traffic"], min_count=30)
    assert all("code" not in level for level in strict.levels)
    loose = choose_levels(train, valid, ["code", "traffic"], min_count=10)
    assert loose.levels[0] == ("code",)
    assert loose.mae_s[-1] == 0.0


def test_store_level_history_is_still_served_where_stores_exist() -> None:
    frame = _orders(8000, 3, store_effect_s=400.0)
    choice = choose_levels(frame[:6000], frame[6000:7000], key_columns(frame))
    assert any("store_id" in level for level in choice.levels)
    eta = HeuristicEta(choice.levels).fit(frame[:7000])
    known = frame.row(7500, named=True)
    _, level = eta.predict_one(known)
    assert "store_id" in level
    _, level = eta.predict_one({**known, "store_id": "a new store"})
    assert "store_id" not in level


def test_serving_answers_from_a_request_as_the_offline_evaluation_does() -> None:
    frame = _orders(6000, 4, store_effect_s=200.0)
    choice = choose_levels(frame[:4000], frame[4000:5000], key_columns(frame))
    eta = HeuristicEta(choice.levels).fit(frame[:5000])
    test = frame[5000:]
    offline = eta.predict(test)
    zone = ZoneInfo("UTC")
    answer = HeuristicAnswer(eta, zone, (1.0, 2.0))
    for i, row in enumerate(test.iter_rows(named=True)):
        order = OrderCreated(
            event_id=f"e{i}",
            event_time=row["created_at"],
            order_id=row["order_id"],
            store_id=row["store_id"],
            market_id=row["market_id"],
            attributes={
                "traffic": row["traffic"],
                "weather": row["weather"],
                "noise": row["noise"],
            },
        )
        assert answer.eta(order) == (offline[i, 0], offline[i, 1])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"min_count": 0}, ConfigError, "min_count: must be an int >= 1"),
        ({"max_columns": 0}, ConfigError, "max_columns: must be an int >= 1"),
        ({"columns": ["nope"]}, DataError, "nope: absent from the training rows"),
    ],
)
def test_bad_arguments_are_clear_errors(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    frame = _orders(200, 5)
    args: dict[str, object] = {"columns": ["traffic"], **kwargs}
    columns = args.pop("columns")
    with pytest.raises(error, match=message):
        choose_levels(frame[:100], frame[100:], columns, **args)  # type: ignore[arg-type]


def test_no_validation_row_is_a_data_error() -> None:
    frame = _orders(200, 6)
    with pytest.raises(DataError, match="no validation row"):
        choose_levels(frame, frame[:0], ["traffic"])
