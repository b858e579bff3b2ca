"""The simulator's opt-in regime change: rides slower from a given day on, nothing else."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from arrive.cli.main import run
from arrive.errors import ConfigError
from arrive.ingest.simulator import SimulationConfig, simulate
from arrive.ingest.simulator.config import RegimeChange

BASE = SimulationConfig(seed=4, days=2, orders_per_day=400)
CHANGED = replace(BASE, regime_change=RegimeChange(day=1, travel_slowdown=0.4))


def test_rides_slow_from_the_day_on_and_nothing_before_changes() -> None:
    before, after = simulate(BASE), simulate(CHANGED)
    change = datetime(2025, 3, 3, tzinfo=UTC) + timedelta(days=1)
    early = pl.col("created_at") < change
    # every order created before the change is the same, byte for byte
    assert after.orders.filter(early).equals(before.orders.filter(early))
    late_share = after.truth.filter(~early).get_column("speed_share").to_numpy()
    base_share = before.truth.filter(~early).get_column("speed_share").to_numpy()
    np.testing.assert_allclose(late_share, base_share / 1.4)
    # the inputs a model sees (the traffic levels) do not show it; the durations do
    assert after.orders.filter(~early)["traffic"].equals(before.orders.filter(~early)["traffic"])
    slow = after.orders.filter(~early, pl.col("status") == "delivered")["duration_s"].median()
    fast = before.orders.filter(~early, pl.col("status") == "delivered")["duration_s"].median()
    assert slow > fast * 1.05  # type: ignore[operator]
    assert after.summary["parameters"]["regime_change"] == {"day": 1, "travel_slowdown": 0.4}
    assert "regime_change" not in before.summary["parameters"]


def test_a_change_on_or_after_the_last_day_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"regime_change\.day"):
        replace(BASE, regime_change=RegimeChange(day=2, travel_slowdown=0.3))
    with pytest.raises(ConfigError, match=r"regime_change\.travel_slowdown"):
        RegimeChange(day=1, travel_slowdown=0.0)


def test_simulate_needs_both_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["simulate", "--out", str(tmp_path / "x"), "--travel-slowdown", "30", "--quiet"])
    assert code != 0
    assert "--travel-slowdown and --slowdown-from-day" in capsys.readouterr().err
