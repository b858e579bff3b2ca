"""``arrive validate``: findings one per line, exit 2 naming the blocking checks, the
profile of accepted data saved for the next run, bad input in one line."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from arrive import datadir
from arrive.cli.main import run
from arrive.testing.factories import daily_orders

ZONE = "Europe/Berlin"


def _data_dir(path: Path, orders: pl.DataFrame) -> Path:
    path.mkdir(parents=True)
    datadir.write_orders(path, orders)
    datadir.write_summary(path, {"local_timezone": ZONE})
    return path


def test_clean_data_passes_and_its_profile_is_the_next_runs_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = daily_orders(days=14)
    first = _data_dir(tmp_path / "first", history)
    saved = tmp_path / "profile.json"
    assert run(["validate", str(first), "--save-profile", str(saved)]) == 0
    assert json.loads(saved.read_text())["rows"] == history.height
    assert "ok    coverage: every day from 2025-03-03 to 2025-03-16" in capsys.readouterr().out
    # the next run: the target read in the wrong unit (minutes as seconds)
    wrong = history.with_columns(pl.col("duration_s") / 60)
    second = _data_dir(tmp_path / "second", wrong)
    assert run(["validate", str(second), "--against", str(saved), "--json"]) == 2
    out, err = capsys.readouterr()
    findings = {f["check"]: f["severity"] for f in json.loads(out)["findings"]}
    assert findings["target"] == "block"
    assert findings["schema"] == "ok"
    assert err.startswith(f"error: {second}: training blocked by target (median delivery time")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "{tmp}/none"], "not a directory"),
        (["validate", "{data}", "--against", "{tmp}/none.json"], "--against {tmp}/none.json:"),
        (["validate", "{data}", "--against", "{data}/orders.parquet"], "not a data profile"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    data = _data_dir(tmp_path / "data", daily_orders(days=3, per_day=20))
    filled = [a.format(tmp=tmp_path, data=data) for a in args]
    assert run(filled) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err
    assert len(err.strip().splitlines()) == 1
