"""Feature drift wired into the monitor: served vectors of each closed window against the
version's reference profile, on ``/metrics`` and in ``drift-*.parquet`` beside the quality
files. Shifting one input turns that feature's drift gauge on, and no other."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pytest

from arrive.clock import ManualClock
from arrive.errors import ConfigError
from arrive.models.profile import Profile, profile_of
from arrive.monitoring.drift import NO_PROFILE, drift_by_version
from arrive.monitoring.monitor import drift_files
from arrive.monitoring.monitor_drift import COUNTS, WindowDrift
from arrive.monitoring.prediction_log import PredictionLog, Predictions

from .scraping import scrape

KINDS = {"distance_km": "numeric", "items": "numeric", "store_category": "categorical"}
HOUR = 3600.0


def vectors(seed: int, n: int, *, km_scale: float = 1.0) -> list[dict[str, Any]]:
    """Feature vectors as the service serves them; ``km_scale`` shifts one input."""
    rng = np.random.default_rng(seed)
    km = rng.gamma(2.0, 1.5, n) * km_scale
    items = rng.integers(1, 6, n).astype(float)
    category = rng.choice(["pizza", "sushi", "thai"], n, p=[0.4, 0.4, 0.2])
    return [
        {"distance_km": float(k), "items": float(i), "store_category": str(c)}
        for k, i, c in zip(km, items, category, strict=True)
    ]


@pytest.fixture(scope="module")
def reference() -> Profile:
    return profile_of(pl.DataFrame(vectors(0, 20_000)), KINDS)


def write_served(
    kit: ModuleType, log_dir: Path, versions: dict[str, list[dict[str, Any]]], hours: float
) -> list[object]:
    """One log file answering each vector (per version) at a random time in ``hours``;
    each order created then delivered 20 minutes later: the events."""
    rng = random.Random(5)
    answers = [
        (rng.uniform(0, hours * HOUR), version, vector)
        for version, served in versions.items()
        for vector in served
    ]
    answers.sort(key=lambda a: a[0])
    log = PredictionLog(log_dir, ManualClock(kit.T0))
    events: list[object] = []
    for index, (at_s, version, vector) in enumerate(answers):
        order = f"o{index}"
        log.extend(
            Predictions(
                [f"r{index}"],
                [order],
                kit.T0 + timedelta(seconds=at_s),
                ["production"],
                [version],
                [vector],
                [1200.0],
                [1800.0],
                [None],
            )
        )
        events += [kit.created(order, at_s), kit.delivered(order, at_s + 1200)]
    log.close()
    return events


def _drift(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {
        dict(labels)["feature"]: value
        for (name, labels), value in metrics.items()
        if name == "arrive_feature_drift" and dict(labels)["version"] == "v1"
    }


@pytest.mark.parametrize(("km_scale", "drifted"), [(1.0, set()), (1.5, {"distance_km"})])
def test_a_shifted_input_shows_as_drift_of_that_feature_only_on_metrics(
    kit: ModuleType,
    make_monitor: Any,
    reference: Profile,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    km_scale: float,
    drifted: set[str],
) -> None:
    served = {"v1": vectors(1, 3000, km_scale=km_scale), "v0": vectors(2, 40)}
    events = write_served(kit, tmp_path / "log", served, hours=1.0)
    drift = WindowDrift({"v1": reference}.get, window_s=HOUR / 4)
    monitor = make_monitor(kit.stream_of(events), window_s=HOUR / 4, drift=drift)
    with caplog.at_level(logging.WARNING, logger="arrive.monitoring.monitor_drift"):
        kit.run_to_end(monitor)
    named = [r.getMessage() for r in caplog.records if "v0" in r.getMessage()]
    assert named == ["model version v0: no reference profile, no drift"]  # once, not per window

    flags = _drift(scrape(monitor))
    assert set(flags) == set(KINDS)
    assert {feature for feature, flag in flags.items() if flag == 1.0} == drifted
    # the version without a profile: no series, one row a window in the file naming why
    table = pl.concat([pl.read_parquet(p) for p in drift_files(tmp_path / "quality")])
    old = table.filter(pl.col("version") == "v0")
    assert old.select("feature", "note").unique().rows() == [(None, NO_PROFILE)]
    assert old.height == 4
    new = table.filter(pl.col("version") == "v1")
    per_window = new.group_by("window_start").agg(pl.col("orders").first())
    assert per_window.get_column("orders").sum() == 3000


def test_window_psi_equals_drift_by_version_on_every_row(
    kit: ModuleType, reference: Profile, tmp_path: Path
) -> None:
    """Bins counted batch by batch give the PSI the drift module computes on all rows."""
    served = {"v1": vectors(3, 900, km_scale=1.5), "v0": vectors(4, 30)}
    write_served(kit, tmp_path / "log", served, hours=2.0)
    log = pl.read_parquet(next((tmp_path / "log").glob("*.parquet")))
    drift = WindowDrift({"v1": reference}.get, window_s=HOUR, min_orders=100)
    counts = pl.DataFrame(schema=COUNTS)
    for batch in log.iter_slices(250):  # as if read file by file
        counts = drift.add(batch, counts)
    table, held = drift.close(counts, kit.T0 + timedelta(hours=2))
    assert held.is_empty()
    for start in (kit.T0, kit.T0 + timedelta(hours=1)):
        window = log.filter(
            (pl.col("time") >= start) & (pl.col("time") < start + timedelta(hours=1))
        )
        expected = drift_by_version(window, {"v1": reference}, min_orders=100, limit=None)
        found = table.filter(pl.col("window_start") == start).drop("window_start", "window_end")
        assert found.drop("psi").equals(expected.drop("psi"))
        psi = found.get_column("psi").fill_null(-1.0).to_list()
        assert psi == pytest.approx(expected.get_column("psi").fill_null(-1.0).to_list(), abs=1e-12)
    assert table.filter(pl.col("version") == "v1").get_column("drifted").any()


def test_drift_survives_a_restart_mid_window(
    kit: ModuleType, make_monitor: Any, reference: Profile, tmp_path: Path
) -> None:
    served = {"v1": vectors(5, 1200, km_scale=1.5)}
    events = write_served(kit, tmp_path / "log", served, hours=1.0)
    stream = kit.stream_of(events)
    # split the log in two files: the first read before the restart, the second after
    (path,) = (tmp_path / "log").glob("*.parquet")
    log = pl.read_parquet(path)
    path.unlink()
    first, second = log.head(600), log.tail(600)
    first.write_parquet(tmp_path / "log" / "predictions-20250303T120000Z-pid1-0.parquet")
    monitor = make_monitor(stream, window_s=HOUR, drift=WindowDrift({"v1": reference}.get, HOUR))
    monitor.step()
    assert monitor.join.state.closed_until <= kit.T0  # its window is still open
    second.write_parquet(tmp_path / "log" / "predictions-20250303T120000Z-pid1-1.parquet")
    again = make_monitor(stream, window_s=HOUR, drift=WindowDrift({"v1": reference}.get, HOUR))
    kit.run_to_end(again)
    (written,) = drift_files(tmp_path / "quality")
    table = pl.read_parquet(written)
    assert table.get_column("orders").unique().to_list() == [1200]
    assert _drift(scrape(again))["distance_km"] == 1.0


def test_bad_drift_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="drift threshold"):
        WindowDrift(lambda v: None, 300.0, threshold=-0.1)
    with pytest.raises(ConfigError, match="drift min_orders"):
        WindowDrift(lambda v: None, 300.0, min_orders=0)
