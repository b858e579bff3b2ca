"""The split's fractions: settable, validated with a one-line error, honoured by time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from arrive.cli.main import run
from arrive.errors import ConfigError, DataError
from arrive.testing.factories import random_marketplace, write_data_dir
from arrive.training.split import SplitFractions, make_split


def _created(n: int) -> pl.Series:
    start = datetime(2025, 3, 3, tzinfo=UTC)
    shuffled = np.random.default_rng(0).permutation(n)
    return pl.Series("created_at", [start + timedelta(minutes=int(i)) for i in shuffled])


def test_default_fractions_are_65_10_10_15() -> None:
    split = make_split(_created(1000))
    assert [p.size for p in (split.train, split.valid, split.calib, split.test)] == [
        650,
        100,
        100,
        150,
    ]


def test_custom_fractions_cut_in_time_order() -> None:
    created = _created(1000)
    split = make_split(created, fractions=SplitFractions(test=0.2, valid=0.05, calib=0.25))
    sizes = [p.size for p in (split.train, split.valid, split.calib, split.test)]
    assert sizes == [500, 50, 250, 200]
    parts = [created[p] for p in (split.train, split.valid, split.calib, split.test)]
    for earlier, later in pairwise(parts):
        assert earlier.max() < later.min()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test": 0.0}, r"^test_frac: must be in \(0, 1\), got 0.0$"),
        ({"valid": 1.0}, r"^valid_frac: must be in \(0, 1\), got 1.0$"),
        ({"calib": -0.1}, r"^calib_frac: must be in \(0, 1\), got -0.1$"),
        ({"test": float("nan")}, r"^test_frac: must be in \(0, 1\), got nan$"),
        ({"calib": "0.1"}, r"^calib_frac: expected a number in \(0, 1\), got '0.1'$"),
        ({"test": 0.5, "valid": 0.3, "calib": 0.2}, r"^split fractions: test \+ valid \+ calib"),
    ],
)
def test_bad_fractions_are_one_line_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        SplitFractions(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_a_part_left_without_orders_is_a_data_error() -> None:
    with pytest.raises(DataError, match="the valid part gets no order"):
        make_split(_created(600), fractions=SplitFractions(valid=0.0005))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    market = random_marketplace(3, n_orders=800, days=8)
    return write_data_dir(tmp_path_factory.mktemp("market"), market)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--test-frac", "1.5"], "test_frac: must be in (0, 1), got 1.5"),
        (["--calib-frac", "0"], "calib_frac: must be in (0, 1), got 0.0"),
        (["--test-frac", "0.4", "--valid-frac", "0.3", "--calib-frac", "0.3"], "below 1"),
    ],
)
def test_train_cli_refuses_bad_fractions_in_one_line(
    data_dir: Path,
    tmp_path: Path,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run(
        ["train", str(data_dir), "--out", str(tmp_path / "run"), "--no-register", "--quiet", *args]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_train_cli_honours_the_fractions(data_dir: Path, tmp_path: Path) -> None:
    args = ["--test-frac", "0.2", "--valid-frac", "0.15", "--calib-frac", "0.25"]
    out = tmp_path / "run"
    base = ["train", str(data_dir), "--out", str(out), "--no-register", "--quiet"]
    code = run([*base, "--no-selection", "--param", "n_estimators=30", *args])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    n = sum(metrics[f"n_{part}"] for part in ("train", "valid", "calib", "test"))
    for part, share in (("test", 0.2), ("valid", 0.15), ("calib", 0.25)):
        assert abs(metrics[f"n_{part}"] - share * n) <= 1, part
