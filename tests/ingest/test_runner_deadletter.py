"""Dead-letter backends: what a record holds, and that a failed write is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from arrive.errors import SourceUnavailable
from arrive.ingest.deadletter import (
    DeadLetterRecord,
    FileDeadLetter,
    KafkaDeadLetter,
    RedisStreamDeadLetter,
    read_dead_letters,
    record_payload,
)
from arrive.ingest.source import Position
from arrive.testing.source_contract import START


def _record(payload: bytes, offset: int = 7) -> DeadLetterRecord:
    return DeadLetterRecord(
        reason="not valid JSON",
        field="$",
        payload=payload,
        position=Position("events", 2, offset),
        time=START,
    )


def test_a_record_keeps_text_as_text_and_other_bytes_as_base64() -> None:
    text = _record(b'{"half": ').to_dict()
    binary = _record(b"\xff\x00").to_dict()
    assert (text["payload_text"], "payload_base64" in text) == ('{"half": ', False)
    assert binary["payload_base64"] == "/wA="
    assert [record_payload(r) for r in (text, binary)] == [b'{"half": ', b"\xff\x00"]
    assert text["position"] == "events[2]@7"
    assert text["time"] == "2025-03-03T00:00:00+00:00"


def test_a_file_dead_letter_appends_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "dead" / "events.jsonl"
    FileDeadLetter(path).write([_record(b"a", 1)])
    FileDeadLetter(path).write([_record(b"\xfe", 2), _record(b"c", 3)])
    FileDeadLetter(path).write([])
    records = read_dead_letters(path)
    assert [record_payload(r) for r in records] == [b"a", b"\xfe", b"c"]
    assert [r["offset"] for r in records] == ["1", "2", "3"]


def test_reading_a_missing_dead_letter_file_gives_nothing(tmp_path: Path) -> None:
    assert read_dead_letters(tmp_path / "none.jsonl") == []


def test_a_record_without_a_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="no readable payload"):
        record_payload({"reason": "x"})


@pytest.mark.redis
def test_an_unreachable_redis_dead_letter_raises() -> None:
    dead = RedisStreamDeadLetter("redis://127.0.0.1:1/0", "events")
    with pytest.raises(SourceUnavailable, match="events:dead"):
        dead.write([_record(b"x")])
    dead.close()


@pytest.mark.kafka
def test_an_unacknowledged_kafka_dead_letter_raises() -> None:
    dead = KafkaDeadLetter("127.0.0.1:1", "events", flush_timeout_s=0.2)
    with pytest.raises(SourceUnavailable, match=r"events\.dead"):
        dead.write([_record(b"x")])
    dead.close()
