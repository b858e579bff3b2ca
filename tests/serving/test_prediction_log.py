"""The prediction log: bounded buffer, Parquet files, rotation and retention by the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from arrive.clock import ManualClock
from arrive.serving import metrics
from arrive.serving.prediction_log import PredictionLog, PredictionRecord

START = datetime(2025, 3, 3, 12, tzinfo=UTC)


def _record(i: int, at: datetime, fallback: str | None = None) -> PredictionRecord:
    features = None if fallback else {"distance_km": float(i), "store_id": "s1", "x": None}
    return PredictionRecord(
        f"r{i}",
        f"o{i}",
        at,
        "production",
        None if fallback else "3",
        features,
        600.0,
        900.0,
        fallback,
    )


def test_records_are_written_to_parquet_and_files_rotate(tmp_path: Path) -> None:
    clock = ManualClock(START)
    log = PredictionLog(tmp_path, clock, rotate_s=600)
    log.append(_record(1, clock.now()))
    log.append(_record(2, clock.now(), "deadline"))
    assert log.flush() == 2
    assert log.files() == []  # the file in progress is hidden until complete
    clock.advance(300)
    log.append(_record(3, clock.now()))
    log.flush()
    clock.advance(301)
    log.append(_record(4, clock.now()))
    log.flush()  # rotation: the first file is complete, record 4 opens the next
    first = log.files()
    assert len(first) == 1
    log.close()
    files = log.files()
    assert len(files) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    older = pl.read_parquet(files[0])
    assert older.get_column("order_id").to_list() == ["o1", "o2", "o3"]
    assert older.row(1, named=True) | {"time": None} == {
        "request_id": "r2",
        "order_id": "o2",
        "time": None,
        "variant": "production",
        "model_version": None,
        "features": None,
        "p50_s": 600.0,
        "p90_s": 900.0,
        "fallback": "deadline",
    }
    assert older.get_column("features")[0] == '{"distance_km":1.0,"store_id":"s1","x":null}'
    assert older.get_column("time")[0] == START
    assert pl.read_parquet(files[1]).get_column("order_id").to_list() == ["o4"]
    assert files[0].name.startswith("predictions-20250303T120000Z-pid")


def test_files_older_than_the_retention_are_deleted(tmp_path: Path) -> None:
    clock = ManualClock(START)
    old = tmp_path / "predictions-20250228T120000Z-pid1-0.parquet"
    recent = tmp_path / "predictions-20250303T000000Z-pid1-0.parquet"
    other = tmp_path / "notes.parquet"
    for path in (old, recent, other):
        path.write_bytes(b"x")
    log = PredictionLog(tmp_path, clock, retention_days=1.0)
    log.append(_record(1, clock.now()))
    log.close()
    assert not old.exists()
    assert recent.exists()
    assert other.exists()
    (first,) = (p for p in log.files() if p != recent)
    clock.advance(timedelta(hours=13).total_seconds())
    log.append(_record(2, clock.now()))
    log.close()
    assert not recent.exists()  # started 25 h ago
    assert first.exists()  # started 13 h ago
    assert len(log.files()) == 2


def test_a_full_buffer_drops_and_counts_and_never_blocks(tmp_path: Path) -> None:
    clock = ManualClock(START)
    log = PredictionLog(tmp_path, clock, buffer=3)
    before = metrics.LOG_DROPPED._value.get()
    kept = [log.append(_record(i, clock.now())) for i in range(5)]
    assert kept == [True, True, True, False, False]
    assert log.dropped == 2
    assert metrics.LOG_DROPPED._value.get() == before + 2
    assert log.flush() == 3
    assert log.append(_record(9, clock.now()))
    log.close()
    assert log.written == 4
    assert sum(pl.read_parquet(p).height for p in log.files()) == 4


def test_many_records_cross_the_arrow_chunks_intact_with_their_own_times(tmp_path: Path) -> None:
    clock = ManualClock(START)
    log = PredictionLog(tmp_path, clock)
    for i in range(1_300):  # over two chunks of 512, then a partial one
        at = START + timedelta(microseconds=i // 100)  # a request's answers share a time
        log.append(_record(i, at, "overload" if i % 7 == 0 else None))
    assert len(log) == 1_300
    batches = log.take()
    assert len(log) == 0
    assert log.write(batches) == 1_300
    log.close()
    frame = pl.read_parquet(log.files())
    assert frame.get_column("order_id").to_list() == [f"o{i}" for i in range(1_300)]
    assert frame.get_column("time").to_list() == [
        START + timedelta(microseconds=i // 100) for i in range(1_300)
    ]
    assert frame.get_column("fallback").null_count() == 1_300 - len(range(0, 1_300, 7))
    assert frame.get_column("features")[1] == '{"distance_km":1.0,"store_id":"s1","x":null}'
