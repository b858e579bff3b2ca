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
from arrive.training.pipeline import TrainConfig, TrainResult, run_training
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


CONFIG = TrainConfig(
    select_groups=False,
    report=False,
    refit=True,
    pool_backtest=False,
    model_params={"learning_rate": 0.2, "num_leaves": 15},
)


@pytest.fixture(scope="module")
def evaluated(drifted: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The evaluated fit on the first six days (the drift's first two included)."""
    root = tmp_path_factory.mktemp("evaluated")
    known = data_dir_until(drifted, root / "day6", START + timedelta(days=6))
    return run_training(known, root / "run", CONFIG)


def _next_day_mae(drifted: Path, model: QuantileEta) -> float:
    """The P50 MAE on the seventh day, after the data."""
    ts = load_training_set(drifted)
    created = ts.orders.get_column("created_at")
    rows = np.flatnonzero((created >= START + timedelta(days=6)).to_numpy())
    pred = model.predict(ts.features.frame[rows].select(model.features_))
    return float(np.abs(pred[:, 0] - ts.target_s[rows]).mean())


def test_after_a_drift_the_final_fit_predicts_the_next_day_better(
    drifted: Path, evaluated: TrainResult
) -> None:
    final = final_fit(evaluated, CONFIG)
    described = final.metrics.pop("final_fit")
    assert final.metrics == evaluated.metrics  # the test figures are the evaluated fit's
    assert described["note"] == NOTE
    n = sum(evaluated.metrics[f"n_{part}"] for part in ("train", "valid", "calib", "test"))
    assert described["n_train"] + described["n_calib"] == n
    assert described["train_end"] < described["calib_start"]
    model = evaluated.bundle.model  # type: ignore[union-attr]
    assert described["rounds"] == {str(q): r for q, r in model.rounds_.items()}
    # the final fit learnt the drift's days; the evaluated fit stopped before them
    assert _next_day_mae(drifted, final.bundle.model) < _next_day_mae(drifted, model) * 0.95


def test_trees_on_every_order_keep_the_calibration_found_before_the_last_window(
    drifted: Path, evaluated: TrainResult
) -> None:
    before = final_fit(evaluated, CONFIG)
    every = final_fit(evaluated, CONFIG, every_order=True)
    described = every.metrics["final_fit"]
    n = sum(evaluated.metrics[f"n_{part}"] for part in ("train", "valid", "calib", "test"))
    assert described["n_train"] == n
    assert described["train_end"] == evaluated.metrics["data_end"]
    assert described["calibrated_by"] == {
        k: before.metrics["final_fit"][k] for k in ("n_train", "train_end")
    }
    served, calibrated = every.bundle.model, before.bundle.model
    assert served.anchor_offset_s_ == calibrated.anchor_offset_s_
    assert served.scales_ == calibrated.scales_
    # different trees: they learnt the last window too
    assert _next_day_mae(drifted, served) != _next_day_mae(drifted, calibrated)
