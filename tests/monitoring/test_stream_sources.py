"""The monitor reads outcomes from a real Redis Stream (a throw-away redis-server) and a
real Kafka-protocol broker as it reads an ordered replay: killed before acknowledging,
it resumes exactly; a partitioned topic read unevenly loses nothing; an idle stream's
windows close on the injected clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from arrive.clock import ManualClock
from arrive.ingest.kafka import KafkaEventProducer, KafkaSource
from arrive.ingest.redis_streams import RedisStreamProducer, RedisStreamSource
from arrive.monitoring.join import JoinSettings
from arrive.monitoring.monitor import Monitor, MonitorSettings, quality_files
from arrive.testing.servers.kafka_broker import create_topic


def _monitor(root: Path, log: Path, url: str, stream: str, clock: ManualClock) -> Monitor:
    settings = MonitorSettings(
        log_dir=log,
        out_dir=root / "quality",
        checkpoint=root / "checkpoint.msgpack",
        join=JoinSettings(horizon_s=3600.0, window_s=300.0),
        batch_size=500,
        files_per_step=1,
        idle_lag_s=0.0,
    )
    source = RedisStreamSource(
        url, stream, group="arrive-monitor", consumer="monitor-1", claim_min_idle_ms=0
    )
    monitor = Monitor(settings, source, clock)
    monitor.resume()
    return monitor


def _drain(monitor: Monitor, steps: int | None = None) -> None:
    """Step until the stream is idle and the log read (or ``steps`` steps)."""
    for done in range(10_000):
        if steps is not None and done == steps:
            return
        if not monitor.step() and not monitor.backlog():
            return
    raise AssertionError("the stream never went idle")


def _quality(directory: Path) -> pl.DataFrame:
    frames = [pl.read_parquet(p) for p in quality_files(directory)]
    return pl.concat(frames).sort("window_start", "version", "variant", "segment_kind", "segment")


@pytest.mark.redis
def test_a_redis_stream_source_killed_before_acknowledging_resumes_exactly(
    kit: ModuleType,
    make_monitor: Callable[..., Monitor],
    redis_url: str,
    tmp_path: Path,
) -> None:
    parts, events = kit.random_day(seed=8, orders=1500, hours=3, files=6)
    kit.write_logs(tmp_path / "log", parts)
    whole = make_monitor(kit.stream_of(events), run="memory", batch_size=500)
    kit.run_to_end(whole)

    stream = f"outcomes-{uuid.uuid4().hex}"
    producer = RedisStreamProducer(redis_url, stream)
    producer.publish(sorted(events, key=lambda e: (e.event_time, e.event_id)))
    producer.close()
    clock = ManualClock(kit.T0)
    first = _monitor(tmp_path / "redis", tmp_path / "log", redis_url, stream, clock)
    _drain(first, steps=5)
    first.source.commit = lambda positions: None  # type: ignore[method-assign]
    _drain(first, steps=3)  # consumed and checkpointed, never acknowledged: then killed
    first.source.close()

    second = _monitor(tmp_path / "redis", tmp_path / "log", redis_url, stream, clock)
    _drain(second)
    clock.set(kit.T0 + timedelta(days=1))  # the stream stays idle: event time follows the clock
    second.step()
    second.source.close()

    assert second.counts == whole.counts
    assert second.counts["outcome:duplicate"] == whole.counts["outcome:duplicate"] > 0
    assert _quality(tmp_path / "redis" / "quality").equals(
        _quality(tmp_path / "memory" / "quality")
    )


@pytest.mark.kafka
def test_a_partitioned_kafka_topic_gives_what_an_ordered_replay_gives(
    kit: ModuleType,
    make_monitor: Callable[..., Monitor],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    """Orders spread over three partitions, each read at its own pace: a partition behind
    the others holds the watermark back, so none of its outcomes is taken for late."""
    parts, events = kit.random_day(seed=9, orders=1500, hours=3, files=6)
    kit.write_logs(tmp_path / "log", parts)
    whole = make_monitor(kit.stream_of(events), run="memory", batch_size=500)
    kit.run_to_end(whole)

    topic = f"outcomes-{uuid.uuid4().hex}"
    create_topic(kafka_bootstrap, topic, partitions=3)
    producer = KafkaEventProducer(kafka_bootstrap, topic)
    producer.publish(sorted(events, key=lambda e: (e.event_time, e.event_id)))
    clock = ManualClock(kit.T0)
    settings = MonitorSettings(
        log_dir=tmp_path / "log",
        out_dir=tmp_path / "kafka" / "quality",
        checkpoint=tmp_path / "kafka" / "checkpoint.msgpack",
        join=JoinSettings(horizon_s=3600.0, window_s=300.0),
        batch_size=500,
        files_per_step=1,
        idle_lag_s=0.0,
        partitions=3,
    )
    monitor = Monitor(settings, KafkaSource(kafka_bootstrap, topic, "arrive-monitor"), clock)
    handled = 0
    for _ in range(3000):  # the group join takes a moment: empty polls until then
        handled += monitor.step()
        if handled >= len(events) + len(parts):
            break
    clock.set(kit.T0 + timedelta(days=1))
    monitor.step()
    monitor.source.close()

    assert monitor.counts == whole.counts
    assert len(monitor.saved.partitions_seen) == 3
    assert _quality(tmp_path / "kafka" / "quality").equals(
        _quality(tmp_path / "memory" / "quality")
    )


@pytest.mark.kafka
def test_the_command_learns_how_many_partitions_a_topic_has(kafka_bootstrap: str) -> None:
    from arrive.cli.monitor_cmd import _partitions

    topic = f"outcomes-{uuid.uuid4().hex}"
    create_topic(kafka_bootstrap, topic, partitions=4)
    assert _partitions(f"kafka://{kafka_bootstrap}?topic={topic}&group=g") == 4
    assert _partitions("redis://127.0.0.1:6379/0?stream=s") == 1
