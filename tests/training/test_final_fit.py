"""The final fit of a retrain: the evaluated recipe trained again up to the data's last
calibration window. Its windows split every order; it keeps the evaluated fit's test
figures and says so; after a drift it predicts the next day better than the evaluated
fit, which stopped learning days earlier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from arrive.errors import DataError
from arrive.ingest.simulator import SimulationConfig, simulate, write_simulation
from arrive.ingest.simulator.config import RegimeChange
from arrive.models import QuantileEta
from arrive.testing.factories import data_dir_until
from arrive.training.dataset import load_training_set
from arrive.training.final_fit import NOTE, final_fit, final_split
from arrive.training.pipeline import TrainConfig, run_training
from arrive.training.split import SplitFractions, make_split

START = datetime(2025, 3, 3, tzinfo=UTC)


def _created(days: int, per_day: int) -> pl.Series:
    step = timedelta(days=1) / per_day
    return pl.Series([START + i * step for i in range(days * per_day)]).shuffle(seed=1)


def test_the_last_whole_day_calibrates_and_every_order_before_it_trains() -> None:
    created = _created(days=6, per_day=200)
    evaluated = make_split(created)
    final = final_split(created, evaluated)
    assert final.calib_days == evaluated.calib_days == 1
    assert final.test.size == 0
    assert final.valid.size == evaluated.valid.size
    every = np.concatenate([final.train, final.valid, final.calib])
    assert np.array_equal(np.sort(every), np.arange(created.len()))
    last = created.max()
    calib = created.gather(final.calib)
    assert calib.min() > last - timedelta(days=1)  # type: ignore[operator]
    before = created.gather(np.concatenate([final.train, final.valid]))
    assert before.max() <= last - timedelta(days=1)  # type: ignore[operator]
    assert created.gather(final.valid).min() > created.gather(final.train).max()  # type: ignore[operator]


def test_a_share_window_keeps_its_size_at_the_end() -> None:
    created = _created(days=3, per_day=400)
    evaluated = make_split(created, fractions=SplitFractions(calib_days=None))
    final = final_split(created, evaluated)
    assert final.calib_days is None
    assert final.calib.size == evaluated.calib.size
    assert created.gather(final.calib).min() > created.gather(final.valid).max()  # type: ignore[operator]


def test_a_window_that_leaves_no_training_order_is_refused() -> None:
    evaluated = make_split(_created(days=6, per_day=200))
    # all but ten orders in the last day: nothing is left before the window for training
    last_day = [START + timedelta(days=5, seconds=60 * i) for i in range(1190)]
    late = pl.Series([START] * 10 + last_day)
    with pytest.raises(DataError, match="final fit: the last calibration window"):
        final_split(late, evaluated)


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven days of 300 orders, rides 50 % slower from day 4."""
    root = tmp_path_factory.mktemp("final-fit")
    config = SimulationConfig(
        seed=3, days=7, orders_per_day=300, regime_change=RegimeChange(4, 0.5)
    )
    write_simulation(simulate(config), root)
    return root


def test_after_a_drift_the_final_fit_predicts_the_next_day_better(
    drifted: Path, tmp_path: Path
) -> None:
    config = TrainConfig(
        select_groups=False,
        report=False,
        refit=True,
        pool_backtest=False,
        model_params={"learning_rate": 0.2, "num_leaves": 15},
    )
    known = data_dir_until(drifted, tmp_path / "day6", START + timedelta(days=6))
    result = run_training(known, tmp_path / "run", config)
    final = final_fit(result, config)

    described = final.metrics.pop("final_fit")
    assert final.metrics == result.metrics  # the test figures are the evaluated fit's
    assert described["note"] == NOTE
    n = sum(result.metrics[f"n_{part}"] for part in ("train", "valid", "calib", "test"))
    assert described["n_train"] + described["n_calib"] == n
    assert described["train_end"] < described["calib_start"]
    assert described["rounds"] == {str(q): r for q, r in result.bundle.model.rounds_.items()}  # type: ignore[union-attr]

    # the seventh day, after the data: the final fit learnt the drift's days
    ts = load_training_set(drifted)
    created = ts.orders.get_column("created_at")
    rows = np.flatnonzero((created >= START + timedelta(days=6)).to_numpy())
    y = ts.target_s[rows]

    def mae(model: QuantileEta) -> float:
        pred = model.predict(ts.features.frame[rows].select(model.features_))
        return float(np.abs(pred[:, 0] - y).mean())

    evaluated = result.bundle.model  # type: ignore[union-attr]
    assert mae(final.bundle.model) < mae(evaluated) * 0.95
