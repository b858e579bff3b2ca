"""``arrive simulate`` writes a data directory like an import does."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from arrive import datadir
from arrive.cli.main import run
from arrive.ingest.simulator import SimulationConfig, simulate

ARGS = ["--days", "1", "--orders-per-day", "300", "--markets", "2", "--seed", "3", "--quiet"]


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_writes_orders_events_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    assert run(["simulate", "--out", str(out), *ARGS, "--start", "2025-06-02"]) == 0
    expected = simulate(
        SimulationConfig(seed=3, days=1, orders_per_day=300, markets=2, start=date(2025, 6, 2))
    )
    assert datadir.read_orders(out).equals(expected.orders)
    events = datadir.scan_events(out).collect()
    assert events.sort("event_time", "event_id").equals(expected.events)
    days = sorted(p.name for p in (out / datadir.EVENTS_DIR).iterdir())
    assert days[0] == "date=2025-06-02"
    summary = json.loads((out / datadir.SUMMARY_FILE).read_text())
    assert summary["source"] == "simulator"
    assert summary["rows_in"] == summary["rows_imported"] == 300
    assert summary["rows_quarantined"] == 0
    assert summary["parameters"]["start"] == "2025-06-02"
    assert sum(summary["events"].values()) == events.height
    assert not list(tmp_path.glob(".*partial*"))


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert run(["simulate", "--out", str(first), *ARGS]) == 0
    assert run(["simulate", "--out", str(second), *ARGS]) == 0
    assert _files(first) == _files(second)


def test_refuses_a_non_empty_directory_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run(["simulate", "--out", str(out), *ARGS]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert run(["simulate", "--out", str(out), *ARGS, "--force"]) == 0
    assert not (out / "keep.txt").exists()
    assert pl.read_parquet(out / datadir.ORDERS_FILE).height == 300


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [("--days", "0", "days"), ("--markets", "40", "markets"), ("--orders-per-day", "-5", "orders")],
)
def test_bad_parameters_exit_2_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, named: str
) -> None:
    out = tmp_path / "sim"
    assert run(["simulate", "--out", str(out), "--quiet", option, value]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "Traceback" not in err
    assert not out.exists()
