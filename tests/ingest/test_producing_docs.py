"""docs/producing.md: its producer examples, run as written against a real redis-server and
a real Kafka-protocol broker, produce events the ingest runner applies, none refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from arrive.clock import ManualClock
from arrive.ingest.deadletter import MemoryDeadLetter
from arrive.ingest.kafka import KafkaSource
from arrive.ingest.redis_streams import RedisStreamSource
from arrive.ingest.runner import IngestRunner
from arrive.ingest.source import EventSource
from arrive.testing.servers.kafka_broker import create_topic
from arrive.testing.source_contract import FAST_FETCH_CONFIG, run_until, unique_name

DOC = Path(__file__).resolve().parents[2] / "docs" / "producing.md"


def _example(n: int) -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 2
    return str(blocks[n])


def _ingest(source: EventSource, n: int) -> list[str]:
    """Event ids the runner applies from ``source`` until ``n`` messages were handled."""
    applied: list[str] = []
    dead = MemoryDeadLetter()
    clock = ManualClock(datetime(2026, 12, 2, 11, tzinfo=UTC))
    runner = IngestRunner(source, lambda b: applied.extend(e.event_id for e in b), dead, clock)
    try:
        run_until(runner, lambda: runner.stats().messages >= n)
    finally:
        source.close()
    assert dead.records == []
    return applied


@pytest.mark.redis
def test_the_redis_example_produces_events_that_are_ingested(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = unique_name("docs")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ARRIVE_STREAM", stream)
    exec(compile(_example(0), str(DOC), "exec"), {"__name__": "producing_example"})
    source = RedisStreamSource(redis_url, stream)
    assert _ingest(source, 3) == ["o-1:created", "o-1:confirmed", "c-7:1733133700"]


@pytest.mark.kafka
def test_the_kafka_example_produces_events_that_are_ingested(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = unique_name("docs")
    create_topic(kafka_bootstrap, topic, partitions=3)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("ARRIVE_TOPIC", topic)
    exec(compile(_example(1), str(DOC), "exec"), {"__name__": "producing_example"})
    source = KafkaSource(
        kafka_bootstrap, topic, "docs", partitions=[0, 1, 2], config=FAST_FETCH_CONFIG
    )
    assert sorted(_ingest(source, 2)) == ["c-7:1733133760", "o-2:created"]
