"""``arrive monitor`` from the command line: a data-directory replay end to end, damaged
log files skipped and counted, and every bad setting refused in one line (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from arrive import datadir
from arrive.cli.main import run
from arrive.errors import ConfigError
from arrive.monitoring import checkpoint
from arrive.monitoring.drift import NO_PROFILE
from arrive.monitoring.join import JoinSettings
from arrive.monitoring.monitor import MonitorSettings, drift_files, quality_files
from arrive.monitoring.monitor_rollout import RolloutSettings
from arrive.monitoring.quality import Band
from arrive.testing.factories import random_marketplace, write_data_dir


@pytest.fixture
def replay(kit: ModuleType, tmp_path: Path) -> tuple[Path, Path, int]:
    """A data directory, a log answering each of its orders at creation (P50 = 20 min,
    P90 = 40 min), and how many of the answered orders were delivered."""
    data = write_data_dir(tmp_path / "data", random_marketplace(seed=5, n_orders=300, days=1))
    orders = datadir.read_orders(data)
    t0 = kit.T0
    answers = [
        kit.Served(order, (created - t0).total_seconds(), 1200.0, 2400.0)
        for order, created in orders.select("order_id", "created_at").iter_rows()
    ]
    answers.sort(key=lambda a: a.at_s)
    half = len(answers) // 2
    log = tmp_path / "log"
    kit.write_logs(log, [answers[:half], answers[half:]])
    delivered = orders.filter(pl.col("status") == "delivered").height
    return data, log, delivered


def _args(tmp_path: Path, data: Path | str, log: Path, *more: str) -> list[str]:
    return [
        "monitor",
        "--log-dir",
        str(log),
        "--source",
        str(data),
        "--quiet",
        "--out",
        str(tmp_path / "quality"),
        "--checkpoint",
        str(tmp_path / "ck.msgpack"),
        *more,
    ]


def test_a_replay_joins_every_delivered_order_and_skips_damaged_files(
    replay: tuple[Path, Path, int], tmp_path: Path
) -> None:
    data, log, delivered = replay
    (log / "predictions-20990101T000000Z-pid1-0.parquet").write_bytes(b"PAR1 cut short")
    good = sorted(log.glob("predictions-*.parquet"))[0]
    (log / "predictions-20990101T000000Z-pid1-1.parquet").write_bytes(good.read_bytes()[:-300])
    pl.DataFrame({"x": [1]}).write_parquet(log / "predictions-20990101T000000Z-pid1-2.parquet")
    (log / ".predictions-20990101T000000Z-pid1-3.parquet.tmp").write_bytes(b"in progress")

    assert run(_args(tmp_path, data, log, "--window-s", "3600")) == 0

    saved = checkpoint.load(tmp_path / "ck.msgpack")
    assert saved is not None
    counts = saved.state.counts
    assert counts["outcome:joined"] == counts["joined:v1|production"] == delivered > 200
    assert (counts["skipped:truncated"], counts["skipped:schema"]) == (2, 1)
    assert ".predictions-20990101T000000Z-pid1-3.parquet.tmp" not in saved.log_files
    table = pl.concat([pl.read_parquet(p) for p in quality_files(tmp_path / "quality")])
    every = table.filter(pl.col("segment_kind") == "all")
    assert every.get_column("orders").sum() == delivered
    assert set(table.get_column("segment_kind")) >= {"market", "local_hour", "store_category"}

    # run again: nothing left to read, nothing counted twice
    assert run(_args(tmp_path, data, log, "--window-s", "3600")) == 0
    again = checkpoint.load(tmp_path / "ck.msgpack")
    assert again is not None
    assert again.state.counts == counts


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--horizon-s", "0"], "--horizon-s: must be > 0"),
        (["--horizon-s", "-5"], "--horizon-s: must be > 0"),
        (["--window-s", "0"], "--window-s: must be > 0"),
        (["--coverage-target", "1.5"], "--coverage-target: must lie in (0, 1)"),
        (["--coverage-tolerance", "0.5"], "--coverage-tolerance: must be > 0"),
        (["--timezone", "Mars/Olympus"], "--timezone Mars/Olympus: not an IANA zone"),
        (["--idle-lag-s", "10"], "--idle-lag-s: a data directory is a replay"),
        (["--metrics-port", "70000"], "--metrics-port"),
        (["--batch-size", "0"], "--batch-size"),
        (["--registry", "/nonexistent/registry"], "--registry /nonexistent/registry: no such"),
        (["--slo", "/nonexistent/slo.toml"], "--slo: SLO file /nonexistent/slo.toml does not"),
        (["--prometheus-url", "localhost:9090"], "--prometheus-url localhost:9090: expected"),
        (["--drift-threshold", "0"], "--drift-threshold: must be > 0"),
        (["--drift-min-orders", "0"], "--drift-min-orders: must be at least 1"),
        (["--skew-every-min", "-1"], "--skew-every-min: must be > 0"),
        (["--skew-sample", "0"], "--skew-sample: must be at least 1"),
        (["--rollout-interval-s", "0"], "--rollout-interval-s: must be > 0"),
        (["--events-dir", "/nonexistent/data"], "--events-dir /nonexistent/data: no event log"),
    ],
)
def test_bad_settings_are_refused_in_one_line(
    replay: tuple[Path, Path, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: list[str],
    message: str,
) -> None:
    data, log, _ = replay
    assert run(_args(tmp_path, data, log, *change)) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "ck.msgpack").exists()


@pytest.mark.parametrize(
    ("log_dir", "source", "message"),
    [
        ("missing", "DATA", "--log-dir {tmp}/missing: no such directory"),
        ("log", "{tmp}/nowhere", "--source {tmp}/nowhere: no such data directory"),
        ("log", "ftp://host/x", "--source ftp://host/x: unknown scheme 'ftp'"),
        ("log", "redis://127.0.0.1:1/0", "--source redis://127.0.0.1:1/0"),
        ("log", "kafka://127.0.0.1:1", "missing ?topic="),
    ],
)
def test_bad_paths_and_sources_are_refused_in_one_line(
    replay: tuple[Path, Path, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    log_dir: str,
    source: str,
    message: str,
) -> None:
    data, _, _ = replay
    spec = source.replace("DATA", str(data)).replace("{tmp}", str(tmp_path))
    code = run(_args(tmp_path, spec, tmp_path / log_dir))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert "Traceback" not in err


def test_a_damaged_checkpoint_is_refused_in_one_line(
    replay: tuple[Path, Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, log, _ = replay
    (tmp_path / "ck.msgpack").write_bytes(b"\x00garbage")
    assert run(_args(tmp_path, data, log)) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_help_names_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["monitor", "--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--log-dir",
        "--source",
        "--out",
        "--checkpoint",
        "--horizon-s",
        "--window-s",
        "--coverage-target",
        "--coverage-tolerance",
        "--timezone",
        "--metrics-port",
        "--idle-lag-s",
        "--registry",
        "--batch-size",
        "--slo",
        "--prometheus-url",
        "--drift-threshold",
        "--drift-min-orders",
        "--events-dir",
        "--skew-every-min",
        "--skew-sample",
        "--rollout-interval-s",
    ):
        assert option in out


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: MonitorSettings(p, p, p, batch_size=0), "batch_size: must be at least 1"),
        (lambda p: MonitorSettings(p, p, p, files_per_step=0), "files_per_step: must be"),
        (lambda p: MonitorSettings(p, p, p, partitions=0), "partitions: must be at least 1"),
        (lambda p: MonitorSettings(p, p, p, idle_lag_s=-1.0), "idle_lag_s: must be >= 0"),
        (lambda p: JoinSettings(horizon_s=0.0), "horizon_s: must be > 0"),
        (lambda p: JoinSettings(window_s=-1.0), "window_s: must be > 0"),
        (lambda p: Band(0.9, 0.2), "calibration band"),
        (lambda p: RolloutSettings(interval_s=0.0), "rollout interval_s: must be > 0"),
    ],
)
def test_settings_objects_name_the_bad_field(
    tmp_path: Path, build: Callable[[Path], object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build(tmp_path)


def _healthz(process: subprocess.Popen[str]) -> str:
    """The running command's ``/healthz`` body (its port read from its first lines)."""
    assert process.stderr is not None
    for _ in range(50):
        line = process.stderr.readline()
        if "metrics on http://" in line:
            metrics = line.split("metrics on ", 1)[1].split(",", 1)[0].strip()
            url = metrics.replace("/metrics", "/healthz")
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200
                return str(response.read().decode())
    raise AssertionError("the monitor never said where its metrics are")


@pytest.mark.redis
def test_with_a_stream_and_no_events_dir_healthz_says_skew_and_drift_are_off(
    tmp_path: Path, redis_url: str
) -> None:
    (tmp_path / "log").mkdir()
    source = f"{redis_url}?stream=outcomes-{os.getpid()}"
    args = [*_args(tmp_path, source, tmp_path / "log"), "--metrics-port", "0"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-m", "arrive.cli", *args], stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            body = _healthz(process)
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert body.startswith("ok")
    assert "skew off: --source is a stream and no --events-dir was given" in body
    assert "drift off: no --registry" in body


def test_a_version_missing_from_the_registry_gets_drift_rows_naming_why(
    replay: tuple[Path, Path, int], tmp_path: Path
) -> None:
    data, log, _ = replay
    (tmp_path / "registry").mkdir()
    args = _args(
        tmp_path, data, log, "--window-s", "3600", "--registry", str(tmp_path / "registry")
    )
    assert run(args) == 0
    files = drift_files(tmp_path / "quality")
    assert files
    table = pl.concat([pl.read_parquet(p) for p in files])
    assert table.select("version", "feature", "note").unique().rows() == [("v1", None, NO_PROFILE)]
    windows = pl.concat([pl.read_parquet(p) for p in quality_files(tmp_path / "quality")])
    assert table.height == windows.get_column("window_start").n_unique()  # one a window
