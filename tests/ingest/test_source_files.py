"""File replay: time order, pacing at a speed factor on a ManualClock, checkpoints, bad rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from arrive.clock import ManualClock
from arrive.datadir import write_events
from arrive.errors import ConfigError, InputFileError
from arrive.ingest.deadletter import MemoryDeadLetter
from arrive.ingest.files import FileReplaySource
from arrive.ingest.runner import IngestRunner
from arrive.schema.codec import decode_event
from arrive.schema.events import AnyEvent, OrderConfirmed
from arrive.schema.frame import events_to_frame
from arrive.testing.factories import random_marketplace, write_data_dir
from arrive.testing.source_contract import START


def _event(i: int, at_s: float) -> OrderConfirmed:
    return OrderConfirmed(
        event_id=f"e{i:03d}", event_time=START + timedelta(seconds=at_s), order_id=f"o{i % 3}"
    )


def _data_dir(tmp_path: Path, events: list[AnyEvent] | pl.DataFrame) -> Path:
    frame = events if isinstance(events, pl.DataFrame) else events_to_frame(events)
    write_events(tmp_path / "data", frame)
    return tmp_path / "data"


def test_rows_come_in_event_time_order_across_days(tmp_path: Path) -> None:
    market = random_marketplace(seed=3, n_orders=40, days=2.5)
    source = FileReplaySource(write_data_dir(tmp_path / "data", market), chunk_rows=97)
    times = [decode_event(m.payload).event_time for m in source.poll(100_000, 0.0)]
    assert len(times) == market.events.height
    assert times == sorted(times)
    assert source.exhausted


def test_as_fast_as_possible_never_waits(tmp_path: Path) -> None:
    clock = ManualClock()
    events = [_event(i, i * 3600.0) for i in range(10)]
    source = FileReplaySource(_data_dir(tmp_path, events), clock=clock)
    assert len(source.poll(100, 5.0)) == 10
    assert clock.monotonic() == 0.0


def test_a_speed_factor_releases_each_event_at_its_scaled_time(tmp_path: Path) -> None:
    offsets_s = [0.0, 0.0, 30.0, 90.0, 600.0, 3600.0]
    clock = ManualClock()
    source = FileReplaySource(
        _data_dir(tmp_path, [_event(i, t) for i, t in enumerate(offsets_s)]),
        speed=60.0,
        clock=clock,
    )
    released: list[tuple[float, int]] = []
    while not source.exhausted:
        batch = source.poll(100, timeout_s=1000.0)
        released.append((clock.monotonic(), len(batch)))
    assert released == [(0.0, 2), (0.5, 1), (1.5, 1), (10.0, 1), (60.0, 1)]


def test_a_poll_waits_no_longer_than_its_timeout(tmp_path: Path) -> None:
    clock = ManualClock()
    source = FileReplaySource(
        _data_dir(tmp_path, [_event(0, 0.0), _event(1, 100.0)]), speed=10.0, clock=clock
    )
    assert len(source.poll(10, 1.0)) == 1
    assert source.poll(10, 4.0) == []
    assert clock.monotonic() == 4.0
    assert len(source.poll(10, 8.0)) == 1
    assert clock.monotonic() == 10.0


def test_a_full_batch_is_returned_without_waiting(tmp_path: Path) -> None:
    clock = ManualClock()
    events = [_event(i, 0.0) for i in range(5)] + [_event(5, 50.0)]
    source = FileReplaySource(_data_dir(tmp_path, events), speed=2.0, clock=clock)
    assert [len(source.poll(3, 100.0)) for _ in range(2)] == [3, 2]
    assert clock.monotonic() == 0.0


def test_replay_into_the_runner_applies_every_event(tmp_path: Path) -> None:
    market = random_marketplace(seed=5, n_orders=30, days=1.0)
    source = FileReplaySource(write_data_dir(tmp_path / "data", market))
    applied: list[str] = []
    clock = ManualClock(START + timedelta(days=2))
    runner = IngestRunner(
        source, lambda batch: applied.extend(e.event_id for e in batch), MemoryDeadLetter(), clock
    )
    stats = runner.run()
    assert sorted(applied) == sorted(market.events.get_column("event_id").to_list())
    assert (stats.events_applied, stats.dead_lettered) == (market.events.height, 0)


def test_a_bad_row_is_delivered_raw_and_dead_lettered_with_its_reason(tmp_path: Path) -> None:
    frame = events_to_frame([_event(0, 0.0), _event(1, 1.0), _event(2, 2.0)])
    frame = frame.with_columns(
        order_id=pl.when(pl.col("event_id") == "e001").then(None).otherwise(pl.col("order_id"))
    )
    source = FileReplaySource(_data_dir(tmp_path, frame))
    dead = MemoryDeadLetter()
    applied: list[str] = []
    clock = ManualClock(START + timedelta(days=1))
    IngestRunner(source, lambda b: applied.extend(e.event_id for e in b), dead, clock).run()
    assert applied == ["e000", "e002"]
    (record,) = dead.records
    assert (record.field, record.reason, record.position.offset) == (
        "order_id",
        "required field is missing",
        1,
    )
    assert b'"event_id":"e001"' in record.payload


def test_a_checkpoint_resumes_after_the_committed_row(tmp_path: Path) -> None:
    directory = _data_dir(tmp_path, [_event(i, float(i)) for i in range(10)])
    checkpoint = tmp_path / "replay.json"
    first = FileReplaySource(directory, checkpoint=checkpoint)
    first.commit([m.position for m in first.poll(4, 0.0)])
    first.poll(3, 0.0)  # delivered, never committed
    resumed = FileReplaySource(directory, checkpoint=checkpoint)
    ids = [decode_event(m.payload).event_id for m in resumed.poll(100, 0.0)]
    assert ids == [f"e{i:03d}" for i in range(4, 10)]


def test_without_a_checkpoint_a_replay_starts_over(tmp_path: Path) -> None:
    directory = _data_dir(tmp_path, [_event(i, float(i)) for i in range(5)])
    first = FileReplaySource(directory)
    first.commit([m.position for m in first.poll(5, 0.0)])
    assert len(FileReplaySource(directory).poll(10, 0.0)) == 5


def test_a_missing_event_log_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no event log"):
        FileReplaySource(tmp_path)


def test_an_event_log_folder_without_files_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "events" / "2022-02-11").mkdir(parents=True)  # e.g. an import that kept no row
    with pytest.raises(InputFileError, match="no event log"):
        FileReplaySource(tmp_path)


@pytest.mark.parametrize("speed", [0.0, -2.0])
def test_speed_must_be_positive(tmp_path: Path, speed: float) -> None:
    directory = _data_dir(tmp_path, [_event(0, 0.0)])
    with pytest.raises(ConfigError, match="speed"):
        FileReplaySource(directory, speed=speed)


@pytest.mark.parametrize("content", [b"not json", b'{"next_row": 99}'])
def test_a_bad_checkpoint_is_refused(tmp_path: Path, content: bytes) -> None:
    directory = _data_dir(tmp_path, [_event(0, 0.0)])
    checkpoint = tmp_path / "replay.json"
    checkpoint.write_bytes(content)
    with pytest.raises(ConfigError, match=r"replay\.json"):
        FileReplaySource(directory, checkpoint=checkpoint)
