"""A monitor killed mid-run resumes exactly: the same quality rows, feature-drift rows and
totals as a run that was never interrupted, whichever moment the kill fell on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from arrive.models.profile import profile_of
from arrive.monitoring import checkpoint
from arrive.monitoring.monitor import Monitor, drift_files, quality_files
from arrive.monitoring.monitor_drift import WindowDrift

HISTORY = "store_delivery_count_28d"


def _quality(directory: Path) -> pl.DataFrame:
    files = quality_files(directory)
    assert files
    return pl.concat([pl.read_parquet(f) for f in files]).sort(
        "window_start", "version", "variant", "segment_kind", "segment"
    )


def _drift(directory: Path) -> pl.DataFrame:
    files = drift_files(directory)
    assert files
    return pl.concat([pl.read_parquet(f) for f in files]).sort("window_start", "feature")


def _window_drift() -> WindowDrift:
    """Drift of the served store-history count against a profile of 0 to 99."""
    profile = profile_of(
        pl.DataFrame({HISTORY: [float(i) for i in range(100)]}), {HISTORY: "numeric"}
    )
    return WindowDrift({"v1": profile}.get, 300.0, min_orders=10)


@pytest.fixture
def day(kit: ModuleType, tmp_path: Path) -> list[object]:
    parts, events = kit.random_day(seed=3, orders=3000, hours=6, files=12)
    kit.write_logs(tmp_path / "log", parts)
    return events


class Crash(Exception):
    """The kill, at a chosen moment."""


def _crash_once(
    monkeypatch: pytest.MonkeyPatch, target: object, name: str, armed: list[bool]
) -> None:
    """``target.name`` raises :class:`Crash` the first time it is called once ``armed``."""
    real = getattr(target, name)

    def failing(*args: object, **kwargs: object) -> object:
        if armed:
            armed.clear()
            raise Crash(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


def _arm_after_write(monkeypatch: pytest.MonkeyPatch, monitor: Monitor, armed: list[bool]) -> None:
    real = monitor._write

    def writing(kind: str, table: pl.DataFrame) -> None:
        real(kind, table)
        armed.append(True)

    monkeypatch.setattr(monitor, "_write", writing)


@pytest.mark.parametrize("moment", ["between_steps", "before_checkpoint", "before_commit"])
def test_a_killed_monitor_resumes_without_losing_or_double_counting(
    kit: ModuleType,
    make_monitor: Callable[..., Monitor],
    day: list[object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moment: str,
) -> None:
    whole = make_monitor(
        kit.stream_of(day), run="whole", batch_size=700, files_per_step=1, drift=_window_drift()
    )
    kit.run_to_end(whole)

    stream = kit.stream_of(day)
    first: Monitor = make_monitor(
        stream, run="killed", batch_size=700, files_per_step=1, drift=_window_drift()
    )
    for _ in range(9):  # mid-window, mid-file list, mid-stream
        first.step()
    assert quality_files(tmp_path / "killed" / "quality")  # some windows were closed
    armed: list[bool] = []
    if moment == "before_checkpoint":  # a quality file is written, the checkpoint is not
        _arm_after_write(monkeypatch, first, armed)
        _crash_once(monkeypatch, checkpoint, "save", armed)
    elif moment == "before_commit":  # the checkpoint is saved, the source not committed
        armed.append(True)
        _crash_once(monkeypatch, first.source, "commit", armed)
    if moment != "between_steps":
        with pytest.raises(Crash):
            kit.run_to_end(first)
    del first

    # resumed with other batch sizes: windows close in other groups (other file names)
    second = make_monitor(
        stream, run="killed", batch_size=5000, files_per_step=3, drift=_window_drift()
    )
    assert not second.latest.is_empty()  # the figures a scrape sees right after the restart
    kit.run_to_end(second)
    assert second.counts == whole.counts
    assert whole.counts["outcome:duplicate"] > 0
    assert whole.counts["outcome:unknown_order"] > 0
    assert _quality(tmp_path / "killed" / "quality").equals(
        _quality(tmp_path / "whole" / "quality")
    )
    drift = _drift(tmp_path / "whole" / "quality")
    assert drift.get_column("drifted").any()  # 500 served above the profile's range
    assert _drift(tmp_path / "killed" / "quality").equals(drift)


def test_a_checkpoint_saved_before_joined_rows_had_an_outcome_still_loads(
    kit: ModuleType, make_monitor: Callable[..., Monitor], day: list[object], tmp_path: Path
) -> None:
    first = make_monitor(kit.stream_of(day), run="old", files_per_step=1)
    for _ in range(6):
        first.step()
    held = first.join.state.frames["joined"]
    assert not held.is_empty()
    first.saved.state.frames["joined"] = held.drop("outcome")  # as saved before
    checkpoint.save(tmp_path / "old" / "checkpoint.msgpack", first.saved)

    loaded = checkpoint.load(tmp_path / "old" / "checkpoint.msgpack")

    assert loaded is not None
    # joined rows were all deliveries before cancelled ones were kept
    assert loaded.state.frames["joined"].equals(held.with_columns(outcome=pl.lit("delivered")))

    # and held rows saved before requests' latency was logged load with it unknown
    first.saved.state.frames["joined"] = held.drop("outcome", "latency_s")
    checkpoint.save(tmp_path / "old" / "checkpoint.msgpack", first.saved)
    loaded = checkpoint.load(tmp_path / "old" / "checkpoint.msgpack")
    assert loaded is not None
    expected = held.with_columns(outcome=pl.lit("delivered"), latency_s=pl.lit(None, pl.Float64))
    assert loaded.state.frames["joined"].equals(expected)

    # and before requests' errors were logged: none ended in one
    first.saved.state.frames["joined"] = held.drop("error")
    checkpoint.save(tmp_path / "old" / "checkpoint.msgpack", first.saved)
    loaded = checkpoint.load(tmp_path / "old" / "checkpoint.msgpack")
    assert loaded is not None
    assert loaded.state.frames["joined"].equals(held.with_columns(error=pl.lit(None, pl.String)))
