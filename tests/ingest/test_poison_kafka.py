"""The ingest runner on a real Kafka topic (tansu) fed poison messages by hand: invalid
UTF-8, not JSON, a null value, a huge value, headers. Each bad message becomes one dead
letter (on ``<topic>.dead``) with its reason, the good ones around it are applied, the
batch is committed, and a restarted consumer of the group dead-letters nothing again."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import msgspec
import pytest
from confluent_kafka import Producer

from arrive.clock import ManualClock
from arrive.ingest.deadletter import KafkaDeadLetter, record_payload
from arrive.ingest.kafka import KafkaSource
from arrive.ingest.runner import IngestRunner
from arrive.schema.codec import encode_event
from arrive.schema.events import OrderCreated
from arrive.testing.servers.kafka_broker import create_topic
from arrive.testing.source_contract import FAST_FETCH_CONFIG, START, drain, run_until, unique_name

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

HUGE: Final = b'{"type":"order_created","event_id":"' + b"x" * 3_000_000 + b'"}'
#: (value, headers, field and reason its dead letter must name); None: a null value.
POISON: Final = (
    (
        b'{"type":"order_created","event_id":"p5\xff\xfe","event_time":"2025-03-03T00:00:00Z",'
        b'"schema_version":1,"order_id":"p5"}',
        None,
        "event_id",
        "not valid UTF-8",
    ),
    (b"\xff\xfe\xfd", [("trace", b"\xff")], "$", "not valid JSON"),
    (None, None, "$", "empty message"),
    (HUGE, None, "event_id", "length"),
)


def _order(i: int) -> bytes:
    when = START + timedelta(minutes=i)
    return encode_event(OrderCreated(event_id=f"good-{i}", event_time=when, order_id=f"o{i}"))


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, object]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 10_000_000})
    for value, headers in messages:
        producer.produce(topic, value=value, key=b"k", headers=headers)
    assert producer.flush(30) == 0


def _run(bootstrap: str, topic: str, applied: list[str], until: int) -> IngestRunner:
    """A runner of group ``g`` on ``topic`` (dead letters on ``<topic>.dead``), run until
    ``until`` messages were handled, committed, and its source closed."""
    source = KafkaSource(bootstrap, topic, "g", partitions=[0], config=FAST_FETCH_CONFIG)
    dead = KafkaDeadLetter(bootstrap, topic)
    clock = ManualClock(START + timedelta(days=1))
    runner = IngestRunner(source, lambda b: applied.extend(e.event_id for e in b), dead, clock)
    try:
        run_until(runner, lambda: runner.stats().messages >= until)
        runner.flush()
    finally:
        source.close()
        dead.close()
    return runner


def _dead_letters(bootstrap: str, topic: str, n: int) -> list[dict[str, str]]:
    reader = KafkaSource(bootstrap, f"{topic}.dead", unique_name("reader"), partitions=[0])
    try:
        records = [msgspec.json.decode(m.payload) for m in drain(reader, n)]
        assert not reader.poll(10, 1.0)  # and nothing more
    finally:
        reader.close()
    return records


def test_poison_messages_are_dead_lettered_once_and_the_batch_committed(
    kafka_bootstrap: str,
) -> None:
    topic = unique_name("kafka-poison")
    create_topic(kafka_bootstrap, topic, partitions=1)
    create_topic(kafka_bootstrap, f"{topic}.dead", partitions=1)
    messages: list[tuple[bytes | None, object]] = [(_order(0), None)]
    messages += [(value, headers) for value, headers, _, _ in POISON]
    messages += [(_order(1), [("source", b"pos\xff"), ("empty", None)])]
    _produce(kafka_bootstrap, topic, messages)

    applied: list[str] = []
    runner = _run(kafka_bootstrap, topic, applied, len(messages))
    assert applied == ["good-0", "good-1"]
    assert runner.stats().dead_lettered == len(POISON)
    records = _dead_letters(kafka_bootstrap, topic, len(POISON))
    assert [r["offset"] for r in records] == [str(i) for i in range(1, len(POISON) + 1)]
    for record, (value, _, field, reason) in zip(records, POISON, strict=True):
        assert record["field"] == field
        assert reason in record["reason"]
        if value is HUGE:
            assert record["payload_size"] == str(len(HUGE))
            assert HUGE.startswith(record_payload(record))
        else:
            assert record_payload(record) == (value or b"")

    _produce(kafka_bootstrap, topic, [(_order(2), None)])
    restarted = _run(kafka_bootstrap, topic, applied, 1)
    assert restarted.stats().messages == 1  # the first run committed everything it handled
    assert applied == ["good-0", "good-1", "good-2"]
    assert len(_dead_letters(kafka_bootstrap, topic, len(POISON))) == len(POISON)
