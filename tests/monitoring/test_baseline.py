"""The heuristic's MAE on the orders the model answered, from each version's heuristic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from arrive.errors import ModelNotFound
from arrive.fallback.heuristic import HeuristicEta
from arrive.monitoring.baseline import HeuristicBaseline
from arrive.monitoring.monitor import Monitor, quality_files


def _heuristic() -> HeuristicEta:
    """Store s1 takes 1,000 s at the median, every other store 3,000 s."""
    frame = pl.DataFrame(
        {"store_id": ["s1"] * 40 + ["s2"] * 40, "duration_s": [1000.0] * 40 + [3000.0] * 40}
    )
    return HeuristicEta(levels=[("store_id",), ("hour",), ()], min_count=30).fit(frame)


def _load(version: str) -> HeuristicEta:
    if version != "v1":
        raise ModelNotFound(f"no version {version}")
    return _heuristic()


def test_the_heuristic_mae_is_measured_on_the_models_orders(
    kit: ModuleType, make_monitor: Callable[..., Monitor], tmp_path: Path
) -> None:
    kit.write_log(
        tmp_path / "log",
        [
            kit.Served("a", 10, 1100, 1500),  # store s1: heuristic 1000, actual 1300
            kit.Served("b", 20, 1500, 2500, version="v2"),  # v2 has no heuristic stored
            kit.Served("c", 30, 900, 1400, None, "heuristic", "deadline"),  # its own P50
        ],
    )
    events = [kit.created(o, t) for o, t in (("a", 10), ("b", 20), ("c", 30))]
    events += [kit.delivered("a", 10 + 1300), kit.delivered("b", 1500), kit.delivered("c", 1030)]
    monitor = make_monitor(
        kit.stream_of(events), baseline=HeuristicBaseline(_load, "Europe/Berlin")
    )
    kit.run_to_end(monitor)
    table = pl.concat([pl.read_parquet(p) for p in quality_files(tmp_path / "quality")])
    rows = {
        r["version"]: r for r in table.filter(pl.col("segment_kind") == "all").iter_rows(named=True)
    }
    assert (rows["v1"]["heuristic_mae_s"], rows["v1"]["heuristic_orders"]) == (300.0, 1)
    assert rows["v1"]["p50_mae_s"] == pytest.approx(200.0)
    assert (rows["v2"]["heuristic_mae_s"], rows["v2"]["heuristic_orders"]) == (None, 0)
    assert rows["heuristic"]["heuristic_mae_s"] == pytest.approx(100.0)  # |900 - 1000|
