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
from arrive.training.split import SplitFractions, auto_calib_days, make_split


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
    assert metrics["calib_days"] is None  # --calib-frac alone: the share, not whole days


def _every_minute(days: float) -> pl.Series:
    start = datetime(2025, 3, 3, 5, 17, tzinfo=UTC)
    return pl.Series("created_at", [start + timedelta(minutes=i) for i in range(int(days * 1440))])


def test_calib_days_takes_the_whole_days_just_before_the_test_period() -> None:
    created = _every_minute(10)
    split = make_split(created, fractions=SplitFractions(calib_days=2))
    parts = [created[p] for p in (split.train, split.valid, split.calib, split.test)]
    for earlier, later in pairwise(parts):
        assert earlier.max() < later.min()
    test_start = parts[3].min()
    assert parts[2].min() == test_start - timedelta(days=2)  # every order of the 48 h
    assert split.calib.size == 2 * 1440
    assert split.test.size == round(0.15 * len(created))
    assert split.valid.size == round(0.10 * len(created))
    assert split.calib_days == 2
    assert "(2 d)" in split.label


@pytest.mark.parametrize(
    ("history_days", "expected"),
    [(1.9, None), (2.0, 1), (13.9, 1), (14.0, 2), (48.9, 6), (49.0, 7), (400.0, 7)],
)
def test_auto_calib_days_is_a_seventh_of_the_history_from_1_to_7(
    history_days: float, expected: int | None
) -> None:
    assert auto_calib_days(history_days) == expected


def test_auto_calib_days_on_the_split() -> None:
    created = _every_minute(20)  # 17 days before the test period: 2 whole days
    assert SplitFractions().calib_days == "auto"  # the default
    assert make_split(created, fractions=SplitFractions(calib_days="auto")).calib_days == 2
    short = make_split(_every_minute(1.5), fractions=SplitFractions(calib_days="auto"))
    assert short.calib_days is None  # under two days of history: the share
    assert short.calib.size == round(0.10 * 1.5 * 1440)


@pytest.mark.parametrize("field", ["calib_days", "test_days"])
@pytest.mark.parametrize("bad", [0, -1, 1.5, "week", True])
def test_bad_days_are_one_line_config_errors(field: str, bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: expected a whole number") as info:
        SplitFractions(**{field: bad})  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_test_days_takes_the_orders_of_the_last_days() -> None:
    created = _every_minute(10)
    last = created.max()
    for fractions in (SplitFractions(test_days=2), SplitFractions(test_days=2, calib_days=None)):
        split = make_split(created, fractions=fractions)
        test = created[split.test]
        assert test.min() == last - timedelta(days=2) + timedelta(minutes=1)  # strictly after
        assert test.max() == last
        assert split.test.size == 2 * 1440
        parts = [created[p] for p in (split.train, split.valid, split.calib, split.test)]
        for earlier, later in pairwise(parts):
            assert earlier.max() < later.min()
    by_days = make_split(created, fractions=SplitFractions(test_days=2, calib_days=1))
    assert created[by_days.calib].min() == created[by_days.test].min() - timedelta(days=1)


def test_test_days_that_leave_too_few_orders_are_a_data_error() -> None:
    with pytest.raises(DataError, match=r"^test_days: the last 3 days hold 100% of the orders"):
        make_split(_every_minute(2.5), fractions=SplitFractions(test_days=3))


def test_a_calibration_window_that_takes_every_order_is_a_data_error() -> None:
    message = r"window leaves 0 orders before it, none for training .*; lower calib_days$"
    with pytest.raises(DataError, match=message):
        make_split(_every_minute(3), fractions=SplitFractions(calib_days=3))


def test_train_cli_refuses_bad_calib_days_in_one_line(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = run(
        [
            "train",
            str(data_dir),
            "--out",
            str(out),
            "--no-register",
            "--quiet",
            "--calib-days",
            "1.5",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "--calib-days: expected a whole number of days >= 1, auto or off, got '1.5'" in err
    assert len(err.strip().splitlines()) == 1


def test_train_cli_honours_calib_days(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ["train", str(data_dir), "--out", str(out), "--no-register", "--quiet"]
    code = run([*base, "--no-selection", "--param", "n_estimators=30", "--calib-days", "1"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["calib_days"] == 1
    assert "(1 d)" in metrics["split_label"]
