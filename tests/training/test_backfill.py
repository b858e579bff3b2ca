"""``arrive backfill``: the features of a date range, by day, equal to what training
computes for those orders; the same on a local Dask cluster; a rerun replaces days."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from arrive.cli.main import run
from arrive.testing.factories import random_marketplace, write_data_dir
from arrive.training.backfill import MANIFEST, backfill, read_backfill
from arrive.training.dataset import load_training_set

ZONE = "Europe/Berlin"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    market = random_marketplace(11, n_orders=500, days=6.0)
    return write_data_dir(tmp_path_factory.mktemp("backfill") / "data", market, ZONE)


@pytest.fixture(scope="module")
def days(data_dir: Path) -> list[date]:
    ts = load_training_set(data_dir)
    local = ts.orders.get_column("created_at").dt.convert_time_zone(ZONE).dt.date()
    return sorted(set(local.to_list()))


def test_the_features_of_a_range_equal_those_training_computes(
    data_dir: Path, days: list[date], tmp_path: Path
) -> None:
    first, last = days[2], days[4]
    done = backfill(data_dir, tmp_path / "features", first, last)
    assert sorted(done.days) == [str(first + timedelta(days=i)) for i in range(3)]
    written = read_backfill(tmp_path / "features")
    assert written.height == done.rows > 100
    ts = load_training_set(data_dir)
    expected = (
        ts.orders.select("order_id", "created_at")
        .with_columns(ts.features.frame.drop("order_id"))
        .filter(pl.col("order_id").is_in(written.get_column("order_id").implode()))
    )
    # every order of the range, no other; the same values feature by feature
    assert expected.height == written.height
    assert done.features == ts.features.names
    assert done.definitions_hash == ts.features.definitions_hash
    assert_frame_equal(
        written.select("order_id", "created_at", *done.features),
        expected.select("order_id", "created_at", *done.features).sort("created_at", "order_id"),
    )


@pytest.mark.dask
def test_a_local_dask_cluster_writes_the_same_values(
    data_dir: Path, days: list[date], tmp_path: Path
) -> None:
    from arrive.training.distributed import connect

    first, last = days[1], days[3]
    backfill(data_dir, tmp_path / "one", first, last)
    with connect("local") as client:
        backfill(data_dir, tmp_path / "dask", first, last, client)
    assert_frame_equal(read_backfill(tmp_path / "one"), read_backfill(tmp_path / "dask"))


def test_a_rerun_replaces_its_days_and_the_manifest_keeps_every_day(
    data_dir: Path, days: list[date], tmp_path: Path
) -> None:
    out = tmp_path / "features"
    backfill(data_dir, out, days[1], days[2])
    once = read_backfill(out)
    again = backfill(data_dir, out, days[2], days[3])
    both = read_backfill(out)
    assert both.get_column("order_id").is_unique().all()
    assert both.height == once.height + again.days[str(days[3])]
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["days"]) == [str(d) for d in days[1:4]]
    assert {d["definitions_hash"] for d in manifest["days"].values()} == {again.definitions_hash}
    assert not list(out.rglob(".*.tmp"))


def test_the_cli_writes_the_range_and_says_what_it_wrote(
    data_dir: Path, days: list[date], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "features"
    args = ["backfill", str(data_dir), "--from", str(days[0]), "--to", str(days[1])]
    assert run([*args, "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "over 2 day(s)" in said
    assert said.strip().endswith(f"→ {out}")
    assert sorted(p.name for p in out.iterdir()) == [
        MANIFEST,
        f"date={days[0]}",
        f"date={days[1]}",
    ]


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        (("2025-03-05", "2025-03-04"), "--to 2025-03-04 is before --from 2025-03-05"),
        (("2030-01-01", "2030-01-02"), "no delivered order created from 2030-01-01 to 2030-01-02"),
        (("2025-13-01", "2025-03-02"), "Invalid value for '--from'"),
    ],
)
def test_bad_ranges_are_one_line(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    dates: tuple[str, str],
    message: str,
) -> None:
    args = ["backfill", str(data_dir), "--from", dates[0], "--to", dates[1]]
    assert run([*args, "--out", str(tmp_path / "f"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
