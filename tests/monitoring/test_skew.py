"""Skew in production: the features a service served (its prediction log) recomputed
offline from the event log. A correct online path shows no mismatch; one broken online
feature, injected through a seam of the online path, shows up for that feature only."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from arrive.errors import DataError
from arrive.monitoring.skew import skew_sample
from arrive.testing.factories import random_marketplace, write_data_dir
from arrive.testing.served_log import ZONE, DoublingStore, ShiftedHour, serve_and_log

BROKEN_AGGREGATE = "store_prep_mean_7d"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    market = random_marketplace(7, n_orders=300, days=3)
    return write_data_dir(tmp_path_factory.mktemp("skew") / "data", market, ZONE)


def _ratios(found: pl.DataFrame) -> dict[str, float]:
    return {r["feature"]: r["mismatch_ratio"] for r in found.iter_rows(named=True)}


def test_a_correct_online_path_shows_no_skew(data_dir: Path, tmp_path: Path) -> None:
    log = serve_and_log(data_dir, tmp_path / "log")
    found = skew_sample(log, data_dir, sample=120, seed=3)
    assert found.get_column("compared").max() == 120
    assert len(found) > 30
    assert not {n: r for n, r in _ratios(found).items() if r}, found.filter(
        pl.col("mismatched") > 0
    )


def test_the_local_hour_shifted_by_one_shows_for_that_feature_only(
    data_dir: Path, tmp_path: Path
) -> None:
    log = serve_and_log(data_dir, tmp_path / "log", reader_class=ShiftedHour)
    found = skew_sample(log, data_dir, sample=120, seed=3)
    ratios = _ratios(found)
    assert ratios.pop("hour_local") == 1.0
    assert not {n: r for n, r in ratios.items() if r}
    example = found.filter(pl.col("feature") == "hour_local").get_column("example").item()
    assert " != " in example


def test_a_broken_stored_aggregate_shows_for_that_feature_only(
    data_dir: Path, tmp_path: Path
) -> None:
    log = serve_and_log(
        data_dir, tmp_path / "log", wrap_store=lambda s: DoublingStore(s, BROKEN_AGGREGATE)
    )
    found = skew_sample(log, data_dir, sample=200, seed=1)
    ratios = _ratios(found)
    broken = ratios.pop(BROKEN_AGGREGATE)
    assert broken > 0.5  # every order whose store had a prep time in the last 7 days
    assert not {n: r for n, r in ratios.items() if r}


def test_the_sample_is_seeded_and_bounded(data_dir: Path, tmp_path: Path) -> None:
    log = serve_and_log(data_dir, tmp_path / "log", reader_class=ShiftedHour)
    first = skew_sample(log, data_dir, sample=25, seed=9)
    again = skew_sample(log, data_dir, sample=25, seed=9)
    assert first.equals(again)
    assert first.get_column("compared").max() == 25


def test_a_log_of_heuristic_answers_only_is_refused_in_one_line(data_dir: Path) -> None:
    log = pl.DataFrame(
        {"order_id": ["a"], "time": [datetime.fromisoformat("2030-01-01T00:00:00+00:00")]}
    ).with_columns(features=pl.lit(None, pl.String))
    with pytest.raises(DataError, match="no answer in the prediction log carries features"):
        skew_sample(log, data_dir)
