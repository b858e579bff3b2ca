"""The ingest event archive: every applied event once, by day, tied to the offset commit —
in memory, and on a real Redis stream and Kafka topic with a consumer SIGKILLed
mid-batch and restarted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from arrive import datadir
from arrive.cli.main import cli, run
from arrive.clock import ManualClock
from arrive.errors import InputFileError
from arrive.ingest.archive import (
    EventArchive,
    archive_orders,
    attach,
    part_name,
    scan_archive,
    to_data_dir,
)
from arrive.ingest.deadletter import FileDeadLetter, MemoryDeadLetter
from arrive.ingest.runner import IngestRunner
from arrive.ingest.source import MemorySource, MemoryStream, Position
from arrive.schema.events import AnyEvent
from arrive.schema.frame import events_to_frame, frame_to_events
from arrive.testing.servers.ingest_child import EventIdLog, open_source, run_and_kill
from arrive.testing.source_contract import START, mixed_messages, run_until, unique_name
from arrive.training.retrain import input_checksums


def _clock() -> ManualClock:
    return ManualClock(START + timedelta(days=1))


def _stream(n: int) -> tuple[list[AnyEvent], MemoryStream]:
    events, messages = mixed_messages(n)
    stream = MemoryStream()
    for key, payload in messages:
        stream.append(payload, key)
    return events, stream


def _archived_runner(source: Any, root: Path, batch_size: int) -> IngestRunner:
    runner = IngestRunner(
        source, lambda _: None, MemoryDeadLetter(), _clock(), batch_size=batch_size
    )
    attach(runner, EventArchive(root))
    return runner


def _raw_rows(root: Path) -> int:
    return pl.scan_parquet(root / "events" / "*" / "*.parquet").select(pl.len()).collect().item()


class _DiesBeforeCommit:
    """A source whose ``n``-th commit dies (the process killed after the archive's part
    was written, before the offsets were committed)."""

    def __init__(self, source: MemorySource, n: int) -> None:
        self.source = source
        self.n = n
        self.commits = 0
        self.exhausted = False

    def poll(self, max_events: int, timeout_s: float) -> list[Any]:
        return self.source.poll(max_events, timeout_s)

    def commit(self, positions: Sequence[Position]) -> None:
        self.commits += 1
        if self.commits == self.n:
            raise RuntimeError("killed")
        self.source.commit(positions)

    def close(self) -> None:
        self.source.close()


def test_the_archive_holds_the_applied_events_by_day_and_no_dead_letter(tmp_path: Path) -> None:
    events, stream = _stream(90)
    runner = _archived_runner(MemorySource(stream, finite=True), tmp_path / "a", 16)
    stats = runner.run()
    assert stats.dead_lettered > 0
    archived = scan_archive(tmp_path / "a").collect()
    assert_frame_equal(archived, events_to_frame(events))
    days = {p.parent.name for p in (tmp_path / "a" / "events").glob("*/*.parquet")}
    assert days == {f"date={d}" for d in archived.get_column("event_time").dt.date().unique()}


def test_a_death_between_the_part_and_the_offset_commit_archives_each_event_once(
    tmp_path: Path,
) -> None:
    events, stream = _stream(90)
    root = tmp_path / "a"
    dying = _DiesBeforeCommit(MemorySource(stream, finite=True), n=3)
    with pytest.raises(RuntimeError, match="killed"):
        _archived_runner(dying, root, 16).run()
    # Restarted, the source redelivers the third batch, here cut into other batches.
    _archived_runner(MemorySource(stream, finite=True), root, 7).run()
    assert _raw_rows(root) > len(events)  # the third batch's events are on disk twice
    assert_frame_equal(scan_archive(root).collect(), events_to_frame(events))


def test_a_redelivered_batch_cut_the_same_way_is_not_written_again(tmp_path: Path) -> None:
    events, stream = _stream(40)
    root = tmp_path / "a"
    dying = _DiesBeforeCommit(MemorySource(stream, finite=True), n=2)
    with pytest.raises(RuntimeError, match="killed"):
        _archived_runner(dying, root, 16).run()
    _archived_runner(MemorySource(stream, finite=True), root, 16).run()
    assert _raw_rows(root) == len(events)


def test_part_names_depend_on_each_partitions_range_only() -> None:
    one = [Position("t", 0, 5), Position("t", 1, 2), Position("t", 0, 9)]
    same = [Position("t", 1, 2), Position("t", 0, 9), Position("t", 0, 7), Position("t", 0, 5)]
    assert part_name(one) == part_name(same)
    assert part_name(one) != part_name([Position("t", 0, 5), Position("t", 0, 10)])
    redis = [Position("s", 0, "1700000000999-0"), Position("s", 0, "1700000001000-0")]
    assert part_name(redis) == part_name(redis[::-1])


def test_a_directory_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputFileError, match="not empty and not an event archive"):
        EventArchive(tmp_path)
    with pytest.raises(InputFileError, match="not an event archive"):
        scan_archive(tmp_path)


def _archive_of(tmp_path: Path, frame: pl.DataFrame) -> Path:
    archive = EventArchive(tmp_path / "a", timezone="Europe/Berlin")
    archive.add(list(frame_to_events(frame)))
    archive.write([Position("t", 0, 0)])
    return archive.root


def test_the_orders_of_an_archive_are_those_its_events_were_made_of(tmp_path: Path) -> None:
    from arrive.testing.factories import random_marketplace

    market = random_marketplace(5, n_orders=80)
    # As in the simulator: the courier is not known at creation, the delivery names it.
    couriers = market.orders.select("order_id", _c=pl.col("courier_id"))
    kind = pl.col("type")
    events = market.events.join(couriers, on="order_id", how="left").with_columns(
        courier_id=pl.when(kind == "order_created")
        .then(None)
        .when(kind == "delivered")
        .then(pl.col("_c"))
        .otherwise(pl.col("courier_id"))
    )
    root = _archive_of(tmp_path, events.drop("_c"))
    columns = ["order_id", "status", "created_at", "delivered_at", "duration_s", "store_id"]
    derived = archive_orders(scan_archive(root)).select(columns)
    assert_frame_equal(derived, market.orders.select(columns).sort("created_at", "order_id"))
    delivered = archive_orders(scan_archive(root)).filter(pl.col("status") == "delivered")
    expected = market.orders.filter(pl.col("status") == "delivered").sort("created_at", "order_id")
    assert delivered.get_column("courier_id").to_list() == expected["courier_id"].to_list()
    data = to_data_dir(root, tmp_path / "data")
    assert pl.read_parquet(data / "orders.parquet").height == market.orders.height
    # Rewritten from the same archive, the same bytes: a retrain's key does not change.
    checksums = input_checksums(data)
    assert input_checksums(to_data_dir(root, tmp_path / "data")) == checksums
    result = CliRunner().invoke(cli, ["validate", str(root), "--json"])
    assert '"findings"' in result.output, result.output


def test_a_second_conversion_rewrites_only_the_days_whose_parts_changed(tmp_path: Path) -> None:
    from arrive.testing.factories import random_marketplace

    events = random_marketplace(6, n_orders=120).events.sort("event_time")
    days = events.get_column("event_time").dt.date()
    last_day = days.max()
    earlier, latest = events.filter(days < last_day), events.filter(days == last_day)
    assert earlier.height > 0
    assert latest.height > 0
    archive = EventArchive(tmp_path / "a", timezone="Europe/Berlin")
    archive.add(list(frame_to_events(earlier)))
    archive.add(list(frame_to_events(latest.head(latest.height // 2))))
    archive.write([Position("t", 0, 0)])
    out = to_data_dir(archive.root, tmp_path / "data")
    files = {p.parent.name: p for p in (out / "events").glob("*/*.parquet")}
    inodes = {day: path.stat().st_ino for day, path in files.items()}
    assert len(inodes) >= 2

    # the rest of the last day arrives as a new part of that day
    archive.add(list(frame_to_events(latest.tail(latest.height - latest.height // 2))))
    archive.write([Position("t", 0, 1)])
    again = to_data_dir(archive.root, out)
    fresh = to_data_dir(archive.root, tmp_path / "fresh")

    grown = f"date={last_day}"
    for day, inode in inodes.items():
        reused = (again / "events" / day / "part-0.parquet").stat().st_ino == inode
        assert reused == (day != grown), day
    for name in ("orders.parquet", *(f"events/{day}/part-0.parquet" for day in inodes)):
        assert_frame_equal(pl.read_parquet(again / name), pl.read_parquet(fresh / name))
    assert pl.read_parquet(again / "events" / grown / "part-0.parquet").height == latest.height
    assert input_checksums(again) == input_checksums(fresh)


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ]
)
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return {"backend": "redis", "url": url, "stream": unique_name("archive")}
    from arrive.testing.servers.kafka_broker import create_topic

    bootstrap: str = request.getfixturevalue("kafka_bootstrap")
    topic = unique_name("archive")
    create_topic(bootstrap, topic, partitions=3)
    return {"backend": "kafka", "url": bootstrap, "stream": topic, "partitions": [0, 1, 2]}


def _publish(backend: dict[str, Any], messages: list[tuple[bytes | None, bytes]]) -> None:
    if backend["backend"] == "redis":
        from arrive.ingest.redis_streams import RedisStreamProducer

        producer = RedisStreamProducer(backend["url"], backend["stream"])
        producer.publish_raw(payload for _, payload in messages)
        producer.close()
    else:
        from arrive.ingest.kafka import KafkaEventProducer

        KafkaEventProducer(backend["url"], backend["stream"]).publish_raw(messages)


def test_a_sigkilled_consumer_restarted_archives_every_event_once(
    backend: dict[str, Any], tmp_path: Path
) -> None:
    events, messages = mixed_messages(60)
    _publish(backend, messages)
    applied = EventIdLog(tmp_path / "applied.txt")
    dead = FileDeadLetter(tmp_path / "dead.jsonl")
    root = tmp_path / "archive"
    settings = {**backend, "group": "arrive-ingest", "consumer": "ingest-1"}
    settings |= {"applied": str(applied.path), "dead": str(dead.path), "archive": str(root)}
    run_and_kill({**settings, "block_after": 25, "batch_size": 5})
    killed_archived = scan_archive(root).collect().height
    assert 0 < killed_archived < 25  # parts of committed batches only
    source = open_source(settings)
    runner = IngestRunner(source, applied.apply, dead, _clock(), batch_size=5, poll_timeout_s=0.2)
    attach(runner, EventArchive(root))
    run_until(runner, lambda: len(applied.ids()) == len(events))
    runner.flush()
    source.close()
    assert_frame_equal(scan_archive(root).collect(), events_to_frame(events))
    assert _raw_rows(root) == len(events)  # redelivered from the last commit: none twice


def test_arrive_ingest_archive_writes_what_it_applies_and_refuses_a_foreign_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from arrive.testing.factories import random_marketplace, write_data_dir

    data = write_data_dir(tmp_path / "data", random_marketplace(seed=5, n_orders=20, days=1))
    common = ["ingest", "--source", str(data), "--dead-letter", str(tmp_path / "d.jsonl")]
    assert run([*common, "--archive", str(tmp_path / "a"), "--quiet"]) == 0
    sent = list(frame_to_events(datadir.scan_events(data).collect()))  # as on the wire
    assert_frame_equal(scan_archive(tmp_path / "a").collect(), events_to_frame(sent))
    capsys.readouterr()
    assert run([*common, "--archive", str(data), "--quiet"]) == 2
    assert "--archive" in capsys.readouterr().err
