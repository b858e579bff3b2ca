"""The ingest runner on a real Kafka topic: poison events, interrupted and killed consumers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from arrive.clock import ManualClock
from arrive.ingest.deadletter import (
    FileDeadLetter,
    KafkaDeadLetter,
    MemoryDeadLetter,
    read_dead_letters,
    record_payload,
)
from arrive.ingest.kafka import KafkaEventProducer, KafkaSource
from arrive.ingest.runner import IngestRunner
from arrive.schema.events import AnyEvent
from arrive.testing.servers.ingest_child import CrashingApply, EventIdLog, run_and_kill
from arrive.testing.servers.kafka_broker import create_topic
from arrive.testing.source_contract import (
    FAST_FETCH_CONFIG,
    POISON,
    START,
    drain,
    mixed_messages,
    run_until,
    unique_name,
)

pytestmark = pytest.mark.kafka

PARTITIONS = [0, 1, 2]


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = unique_name("kafka-runner")
    create_topic(kafka_bootstrap, name, partitions=len(PARTITIONS))
    return name


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START + timedelta(days=1))


def _publish(bootstrap: str, topic: str, n: int) -> list[AnyEvent]:
    events, messages = mixed_messages(n)
    KafkaEventProducer(bootstrap, topic).publish_raw(messages)
    return events


def _source(bootstrap: str, topic: str, group: str) -> KafkaSource:
    return KafkaSource(bootstrap, topic, group, partitions=PARTITIONS, config=FAST_FETCH_CONFIG)


def test_poison_is_dead_lettered_and_every_valid_event_applied(
    kafka_bootstrap: str, topic: str, clock: ManualClock
) -> None:
    events = _publish(kafka_bootstrap, topic, 40)
    create_topic(kafka_bootstrap, f"{topic}.dead", partitions=1)
    applied: list[str] = []
    source = _source(kafka_bootstrap, topic, "poison")
    dead = KafkaDeadLetter(kafka_bootstrap, topic)
    runner = IngestRunner(source, lambda b: applied.extend(e.event_id for e in b), dead, clock)
    run_until(runner, lambda: runner.stats().messages >= 46)
    source.close()
    dead.close()
    assert sorted(applied) == sorted(e.event_id for e in events)
    dead_source = KafkaSource(kafka_bootstrap, f"{topic}.dead", "reader", partitions=[0])
    records = [msgspec.json.decode(m.payload) for m in drain(dead_source, len(POISON))]
    dead_source.close()
    assert [(r["field"], record_payload(r)) for r in records] == [
        (p.field, p.payload) for p in POISON
    ]
    assert all(p.reason_contains in r["reason"] for r, p in zip(records, POISON, strict=True))


def test_a_consumer_interrupted_mid_batch_loses_nothing_after_a_restart(
    kafka_bootstrap: str, topic: str, clock: ManualClock, tmp_path: Path
) -> None:
    events = _publish(kafka_bootstrap, topic, 60)
    applied = EventIdLog(tmp_path / "applied.txt")

    first = _source(kafka_bootstrap, topic, "interrupted")
    dead = FileDeadLetter(tmp_path / "dead.jsonl")
    with pytest.raises(RuntimeError, match="killed"):
        run_until(
            IngestRunner(first, CrashingApply(applied), dead, clock, batch_size=10), lambda: False
        )
    first.close()  # the third batch was never committed
    _recover(kafka_bootstrap, topic, "interrupted", applied, dead, clock, len(events))
    assert applied.ids() == _uninterrupted_run(kafka_bootstrap, topic, clock)
    assert {r["field"] for r in read_dead_letters(dead.path)} == {p.field for p in POISON}


def test_a_sigkilled_runner_process_loses_nothing_after_a_restart(
    kafka_bootstrap: str, topic: str, clock: ManualClock, tmp_path: Path
) -> None:
    events = _publish(kafka_bootstrap, topic, 60)
    applied = EventIdLog(tmp_path / "applied.txt")
    dead = FileDeadLetter(tmp_path / "dead.jsonl")
    settings = {"backend": "kafka", "url": kafka_bootstrap, "stream": topic, "group": "killed"}
    settings |= {"applied": str(applied.path), "dead": str(dead.path), "partitions": PARTITIONS}
    run_and_kill({**settings, "block_after": 25, "batch_size": 10})
    assert 25 <= len(applied.ids()) < len(events)
    _recover(kafka_bootstrap, topic, "killed", applied, dead, clock, len(events))
    assert applied.ids() == _uninterrupted_run(kafka_bootstrap, topic, clock)
    payloads = {
        r.get("payload_text", r.get("payload_base64")) for r in read_dead_letters(dead.path)
    }
    assert len(payloads) == len(POISON)


def _recover(
    bootstrap: str,
    topic: str,
    group: str,
    applied: EventIdLog,
    dead: FileDeadLetter,
    clock: ManualClock,
    n_valid: int,
) -> None:
    """Restart a runner of ``group`` and run it until ``n_valid`` distinct events are applied."""
    source = _source(bootstrap, topic, group)
    runner = IngestRunner(source, applied.apply, dead, clock, batch_size=10, poll_timeout_s=0.2)
    run_until(runner, lambda: len(applied.ids()) >= n_valid)
    source.close()


def _uninterrupted_run(bootstrap: str, topic: str, clock: ManualClock) -> set[str]:
    """Event ids a fresh group applies from the same topic without interruption."""
    source = _source(bootstrap, topic, unique_name("reference"))
    ids: set[str] = set()
    runner = IngestRunner(
        source, lambda b: ids.update(e.event_id for e in b), MemoryDeadLetter(), clock
    )
    run_until(runner, lambda: runner.stats().messages >= 60 + len(POISON))
    source.close()
    return ids
