"""Production skew wired into the monitor: every ``every_s`` seconds of its clock, a sample
of the answers read is recomputed offline from the data directory's event log, and the
mismatch ratio per feature is on ``/metrics``. A service whose local hour is one hour
ahead (the seam of test_skew) shows a ratio of 1 for that feature, 0 for the others."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from arrive.clock import ManualClock
from arrive.errors import ConfigError
from arrive.ingest.files import FileReplaySource
from arrive.monitoring.join import JoinSettings
from arrive.monitoring.monitor import Monitor, MonitorSettings
from arrive.monitoring.monitor_skew import SkewCheck, SkewSettings
from arrive.testing.factories import random_marketplace, write_data_dir
from arrive.testing.served_log import ZONE, ShiftedHour, serve_and_log

from .scraping import scrape

EVERY_S = 900.0


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    market = random_marketplace(7, n_orders=300, days=3)
    return write_data_dir(tmp_path_factory.mktemp("monitor-skew") / "data", market, ZONE)


def _monitor(data_dir: Path, tmp_path: Path, clock: ManualClock) -> Monitor:
    settings = MonitorSettings(
        log_dir=tmp_path / "log",
        out_dir=tmp_path / "quality",
        checkpoint=tmp_path / "checkpoint.msgpack",
        join=JoinSettings(horizon_s=7200.0, window_s=3600.0),
        timezone=ZONE,
    )
    skew = SkewCheck(SkewSettings(data_dir, every_s=EVERY_S, sample=120), clock, ZONE)
    return Monitor(settings, FileReplaySource(data_dir), clock, skew=skew)


def _ratios(monitor: Monitor) -> dict[str, float]:
    return {
        dict(labels)["feature"]: value
        for (name, labels), value in scrape(monitor).items()
        if name == "arrive_feature_skew_mismatch_ratio"
    }


def test_the_local_hour_shifted_by_one_shows_as_its_skew_ratio_on_metrics(
    kit: ModuleType, data_dir: Path, tmp_path: Path
) -> None:
    serve_and_log(data_dir, tmp_path / "log", reader_class=ShiftedHour)
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    monitor = _monitor(data_dir, tmp_path, clock)
    monitor.resume()
    for _ in range(3):
        monitor.step()
    assert _ratios(monitor) == {}  # not due yet: nothing measured, no series
    clock.advance(EVERY_S)
    monitor.step()
    ratios = _ratios(monitor)
    assert ratios.pop("hour_local") == 1.0
    assert len(ratios) > 30
    assert not {name: ratio for name, ratio in ratios.items() if ratio}


def test_a_correct_service_shows_no_skew_once_the_replay_ends(
    kit: ModuleType, data_dir: Path, tmp_path: Path
) -> None:
    serve_and_log(data_dir, tmp_path / "log")
    monitor = _monitor(data_dir, tmp_path, ManualClock(datetime(2030, 1, 1, tzinfo=UTC)))
    monitor.resume()
    kit.run_to_end(monitor)  # finish() measures what the sample holds
    ratios = _ratios(monitor)
    assert "hour_local" in ratios
    assert not {name: ratio for name, ratio in ratios.items() if ratio}


@pytest.mark.parametrize(
    ("change", "message"),
    [({"every_s": 0.0}, "skew every_s: must be > 0"), ({"sample": 0}, "skew sample: must be")],
)
def test_bad_skew_settings_name_the_field(change: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SkewSettings(Path("."), **change)  # type: ignore[arg-type]
