"""`arrive demo` end to end: on the real Food Delivery data and on a small simulation."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from arrive.cli.demo_cmd import choose_data
from arrive.cli.main import run
from arrive.registry import LocalRegistry


@pytest.mark.slow
def test_demo_on_food_delivery_meets_the_model_targets(
    food_delivery_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["demo", "--data", str(food_delivery_csv), "--workdir", str(tmp_path), "--quiet"])
    assert code == 0
    summary = json.loads((tmp_path / "data" / "import_summary.json").read_text())
    assert summary["rows_in"] == 45_593
    assert summary["rows_in"] == summary["rows_imported"] + summary["rows_quarantined"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["split"] == "time"
    assert (
        metrics["mae_s"] <= 0.85 * metrics["heuristic_mae_s"]
    )  # at least 15 % below the heuristic
    assert abs(metrics["coverage_p90"] - 0.90) <= 0.015
    assert metrics["crossings"] == 0
    registry = LocalRegistry(tmp_path / "registry")
    assert registry.get("production").version == "1"
    out = capsys.readouterr().out
    assert "P50 MAE" in out
    assert "report.html" in out
    # The live replay: every test order answered by the service, joined, and equal to offline.
    answers = pl.read_parquet(tmp_path / "live" / "answers.parquet")
    # (orders created at the very instant the test window starts are replayed too)
    assert metrics["n_test"] <= answers.height <= metrics["n_test"] + 10
    assert answers.get_column("fallback").null_count() == answers.height
    assert "— agree" in out
    assert (tmp_path / "live" / "report.html").is_file()


def test_demo_without_data_beside_the_clone_runs_on_a_simulation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fresh clone alone: no ../shared, shared/ or data/ next to the working directory.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARRIVE_DEMO_DATA", raising=False)
    workdir = tmp_path / "w"
    code = run(
        ["demo", "--days", "8", "--orders-per-day", "1200", "--workdir", str(workdir), "--quiet"]
    )
    assert code == 0
    html = (workdir / "run" / "report.html").read_text()
    assert html.count("<svg") >= 4
    assert "<h2>How this model was made</h2>" in html
    assert "source data sha256" in html
    out = capsys.readouterr().out
    assert "P90 coverage" in out
    assert "online vs offline on the same orders" in out
    assert "— agree" in out
    assert "data: a simulated marketplace (8 days, 1,200 orders a day): no Food Delivery CSV" in out
    assert "your own data:" in out
    assert "docs/mapping.md" in out
    live = (workdir / "live" / "report.html").read_text()
    assert "<h2>Online equals offline</h2>" in live
    assert 'aria-label="Latency of ETA requests"' in live
    assert "The replay sent" in live  # and why its count differs from the test orders
    assert "<h2>By segment</h2>" in live
    # What the monitor shows of the replay: calibration by segment, feature drift.
    assert "<h2>Calibration by segment</h2>" in live
    assert "<h3>By market</h3>" in live
    assert "<h2>Feature drift</h2>" in live
    assert "Not measured" not in live  # the service's prediction log was read


def test_data_selection_falls_back_to_a_simulation_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = choose_data(None, simulate=False, days=7, orders_per_day=4000)
    assert data.csv is None
    assert data.description.startswith("a simulated marketplace (7 days, 4,000 orders a day)")
    assert "../shared/data/food_delivery.csv.gz" in data.description


def test_data_selection_prefers_a_food_delivery_csv_found_beside_the_clone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = tmp_path / "arrive"
    clone.mkdir()
    shared = tmp_path / "shared" / "data" / "food_delivery.csv.gz"
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"")
    monkeypatch.chdir(clone)
    data = choose_data(None, simulate=False, days=7, orders_per_day=4000)
    assert data.csv == Path("../shared/data/food_delivery.csv.gz")
    assert "Food Delivery CSV" in data.description
    assert choose_data(None, simulate=True, days=7, orders_per_day=4000).csv is None


def test_demo_with_a_missing_data_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["demo", "--data", str(tmp_path / "nope.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nope.csv: no such file" in err
    assert "Traceback" not in err
