"""The training pipeline end to end on a small marketplace, on one machine and on Dask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from arrive.cli.main import run
from arrive.datadir import read_orders
from arrive.errors import DataError
from arrive.models.artifact import ModelBundle
from arrive.models.check import check_files
from arrive.registry import InMemoryRegistry, LocalRegistry
from arrive.testing.factories import random_marketplace, write_data_dir
from arrive.training.pipeline import TrainConfig, run_training

REQUIRED = (
    "mae_s",
    "rmse_s",
    "coverage_p50",
    "coverage_p90",
    "late_rate",
    "heuristic_mae_s",
    "heuristic_coverage_p90",
    "crossings",
    "n_train",
    "n_test",
    "split",
    "heuristic_levels",
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    market = random_marketplace(11, n_orders=1500, days=12)
    return write_data_dir(tmp_path_factory.mktemp("market"), market)


def test_writes_metrics_report_and_registers(data_dir: Path, tmp_path: Path) -> None:
    registry = InMemoryRegistry()
    result = run_training(
        data_dir, tmp_path / "run", TrainConfig(model_params={"n_estimators": 200}), registry
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(REQUIRED) <= set(metrics)
    assert metrics["split"] == "time"
    assert metrics["crossings"] == 0
    assert metrics["heuristic_levels"][-1] == "global"
    delivered = read_orders(data_dir).filter(pl.col("status") == "delivered").height
    parts = ("n_train", "n_valid", "n_calib", "n_test")
    assert sum(metrics[p] for p in parts) == delivered
    html = (tmp_path / "run" / "report.html").read_text()
    assert "<svg" in html
    assert "http://" not in html
    assert 'aria-label="Validation loss by boosting round"' in html
    assert "boosting rounds kept" in html
    loaded = registry.open(result.version or "")
    bundle = ModelBundle.from_files(loaded.files)
    assert bundle.definitions_hash == loaded.metadata["definitions_hash"]
    # the calibration window is whole days (12 days of orders: 1 day), and the registered
    # heuristic's P90 is scaled on it
    assert metrics["calib_days"] == 1
    assert set(bundle.heuristic.scales_) == {0.9}
    assert loaded.metadata["metrics"]["mae_s"] == metrics["mae_s"]
    # registered with a probe batch of training rows and the model's predictions on them,
    # checked (as every server checks it) before registration
    assert bundle.probe is not None
    assert bundle.probe.rows.shape == (32, len(bundle.model.features_))
    assert check_files(loaded.files).status == "ok"


def test_refit_trains_again_and_pools_the_backtest(data_dir: Path, tmp_path: Path) -> None:
    config = TrainConfig(refit=True, select_groups=False, model_params={"n_estimators": 60})
    result = run_training(data_dir, tmp_path / "run", config)
    model_dir = tmp_path / "run" / "model"
    bundle = ModelBundle.from_files({p.name: p.read_bytes() for p in model_dir.iterdir()})
    rounds = bundle.model.rounds_
    assert rounds
    assert all(r >= 1 for r in rounds.values())
    for q, booster in bundle.model.boosters_.items():
        assert booster.current_iteration() == rounds[q]
    assert result.metrics["crossings"] == 0
    assert 0.0 < result.metrics["coverage_p90"] <= 1.0


def test_random_split_is_labelled(data_dir: Path, tmp_path: Path) -> None:
    result = run_training(
        data_dir,
        tmp_path / "run",
        TrainConfig(split="random", select_groups=False, model_params={"n_estimators": 100}),
    )
    assert result.metrics["split"] == "random"
    assert "published work only" in (tmp_path / "run" / "report.html").read_text()


def test_too_little_data_is_a_clear_error(tmp_path: Path) -> None:
    small = write_data_dir(tmp_path / "small", random_marketplace(1, n_orders=100))
    with pytest.raises(DataError, match="at least 500 delivered orders"):
        run_training(small, tmp_path / "run", TrainConfig())


def test_train_cli_registers_and_prints(data_dir: Path, tmp_path: Path) -> None:
    code = run(
        [
            "train",
            str(data_dir),
            "--out",
            str(tmp_path / "run"),
            "--registry",
            str(tmp_path / "reg"),
            "--param",
            "n_estimators=100",
            "--no-selection",
            "--quiet",
        ]
    )
    assert code == 0
    assert [v.version for v in LocalRegistry(tmp_path / "reg").versions()] == ["1"]


@pytest.mark.parametrize(
    "args", [["--quantiles", "0.5,x"], ["--quantiles", "0.5,0.8"], ["--param", "oops"]]
)
def test_train_cli_user_errors_exit_2(
    data_dir: Path, tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        ["train", str(data_dir), "--out", str(tmp_path / "run"), "--no-register", "--quiet", *args]
    )
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.dask
def test_dask_path_gets_the_same_quality(data_dir: Path, tmp_path: Path) -> None:
    from arrive.training.distributed import connect

    config = TrainConfig(select_groups=False, model_params={"n_estimators": 200})
    local = run_training(data_dir, tmp_path / "local", config)
    with connect("local") as client:
        dask = run_training(
            data_dir, tmp_path / "dask", TrainConfig(**{**config.__dict__, "dask": client})
        )
    assert dask.metrics["n_test"] == local.metrics["n_test"]
    assert np.isclose(dask.metrics["mae_s"], local.metrics["mae_s"], rtol=0.05)
    assert abs(dask.metrics["coverage_p90"] - local.metrics["coverage_p90"]) <= 0.05
    assert dask.metrics["crossings"] == 0
