"""The prediction log: bounded buffer, Parquet files, rotation and retention by the clock."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from arrive.clock import ManualClock
from arrive.monitoring import metrics
from arrive.monitoring.prediction_log import SCHEMA, PredictionLog, Predictions, published

START = datetime(2025, 3, 3, 12, tzinfo=UTC)


def _request(at: datetime, *records: tuple[int, str | None]) -> Predictions:
    """The predictions of one request: ``(i, fallback)`` per record."""
    return Predictions(
        [f"r{i}" for i, _ in records],
        [f"o{i}" for i, _ in records],
        at,
        ["production"] * len(records),
        [None if fallback else "3" for _, fallback in records],
        [
            None if fallback else {"distance_km": float(i), "store_id": "s1", "x": None}
            for i, fallback in records
        ],
        [600.0] * len(records),
        [900.0] * len(records),
        [fallback for _, fallback in records],
    )


def _one(i: int, at: datetime, fallback: str | None = None) -> Predictions:
    return _request(at, (i, fallback))


def test_records_are_written_to_parquet_and_files_rotate(tmp_path: Path) -> None:
    clock = ManualClock(START)
    log = PredictionLog(tmp_path, clock, rotate_s=600)
    assert log.extend(_request(clock.now(), (1, None), (2, "deadline"))) == 2
    assert log.flush() == 2
    assert log.files() == []  # the file in progress is hidden until complete
    clock.advance(300)
    log.extend(_one(3, clock.now()))
    log.flush()
    clock.advance(301)
    log.extend(_one(4, clock.now()))
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
        "rollout": None,
        "latency_s": None,
        "error": None,
    }
    assert older.get_column("features")[0] == '{"distance_km":1.0,"store_id":"s1","x":null}'
    assert older.get_column("time")[0] == START
    assert pl.read_parquet(files[1]).get_column("order_id").to_list() == ["o4"]
    assert files[0].name.startswith(f"predictions-20250303T120000Z-{log.host}-pid{os.getpid()}-")


def test_replicas_sharing_a_directory_write_apart_though_their_process_ids_agree(
    tmp_path: Path,
) -> None:
    # two pods mounting one volume: same start, same pid (each container's own), other host
    logs = [PredictionLog(tmp_path, ManualClock(START), host=h) for h in ("web-1", "web-2")]
    for i, log in enumerate(logs):
        log.extend(_request(START, *((i * 10 + k, None) for k in range(10))))
        log.close()
    names = sorted(p.name for p in published(tmp_path))
    assert len(names) == 2, names
    assert [n.split("-pid")[0] for n in names] == [
        "predictions-20250303T120000Z-web-1",
        "predictions-20250303T120000Z-web-2",
    ]
    read = pl.concat([pl.read_parquet(tmp_path / n) for n in names])
    assert sorted(read.get_column("order_id").to_list()) == sorted(f"o{i}" for i in range(20))


def test_files_older_than_the_retention_are_deleted(tmp_path: Path) -> None:
    clock = ManualClock(START)
    old = tmp_path / "predictions-20250228T120000Z-pid1-0.parquet"
    recent = tmp_path / "predictions-20250303T000000Z-pid1-0.parquet"
    other = tmp_path / "notes.parquet"
    for path in (old, recent, other):
        pq.write_table(SCHEMA.empty_table(), path)
    log = PredictionLog(tmp_path, clock, retention_days=1.0)
    log.extend(_one(1, clock.now()))
    log.close()
    assert not old.exists()
    assert recent.exists()
    assert other.exists()
    (first,) = (p for p in log.files() if p != recent)
    clock.advance(timedelta(hours=13).total_seconds())
    log.extend(_one(2, clock.now()))
    log.close()
    assert not recent.exists()  # started 25 h ago
    assert first.exists()  # started 13 h ago
    assert len(log.files()) == 2


def test_a_full_buffer_drops_and_counts_and_never_blocks(tmp_path: Path) -> None:
    clock = ManualClock(START)
    log = PredictionLog(tmp_path, clock, buffer=3)
    before = metrics.LOG_DROPPED.labels("buffer_full")._value.get()
    assert log.extend(_request(clock.now(), (0, None), (1, None))) == 2
    assert log.extend(_request(clock.now(), *((i, None) for i in range(2, 5)))) == 1
    assert log.extend(_one(5, clock.now())) == 0
    assert log.dropped == {"buffer_full": 3}
    assert metrics.LOG_DROPPED.labels("buffer_full")._value.get() == before + 3
    assert log.flush() == 3
    assert log.extend(_one(9, clock.now())) == 1
    log.close()
    assert log.written == 4
    frame = pl.read_parquet(log.files())
    assert frame.get_column("order_id").to_list() == ["o0", "o1", "o2", "o9"]


def test_many_records_cross_the_arrow_chunks_intact_with_their_own_times(tmp_path: Path) -> None:
    clock = ManualClock(START)
    log = PredictionLog(tmp_path, clock)
    for first in range(0, 1_300, 100):  # over several chunks, then a partial one
        at = START + timedelta(microseconds=first // 100)  # a request's answers share a time
        ids = range(first, first + 100)
        log.extend(_request(at, *((i, "overload" if i % 7 == 0 else None) for i in ids)))
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


def test_files_are_zstd_with_dictionaries_only_for_the_few_valued_columns(
    tmp_path: Path,
) -> None:
    log = PredictionLog(tmp_path, ManualClock(START))
    log.extend(_request(START, *((i, "overload" if i % 3 == 0 else None) for i in range(300))))
    log.close()
    (path,) = log.files()
    group = pq.ParquetFile(path).metadata.row_group(0)
    chunks = {group.column(j).path_in_schema: group.column(j) for j in range(group.num_columns)}
    assert {chunk.compression for chunk in chunks.values()} == {"ZSTD"}
    with_dictionary = {
        name for name, chunk in chunks.items() if "RLE_DICTIONARY" in chunk.encodings
    }
    assert with_dictionary == {"variant", "model_version", "fallback", "rollout", "error"}
