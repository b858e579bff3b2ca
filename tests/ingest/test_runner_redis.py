"""The ingest runner on a real Redis stream: poison events, interrupted and killed consumers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from arrive.clock import ManualClock
from arrive.ingest.deadletter import FileDeadLetter, RedisStreamDeadLetter, read_dead_letters
from arrive.ingest.redis_streams import RedisStreamProducer, RedisStreamSource
from arrive.ingest.runner import IngestRunner
from arrive.schema.events import AnyEvent
from arrive.testing.servers.ingest_child import CrashingApply, EventIdLog, run_and_kill
from arrive.testing.source_contract import POISON, START, mixed_messages, run_until, unique_name

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def stream(redis_url: str) -> str:
    return unique_name("redis-runner")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START + timedelta(days=1))


def _publish(url: str, stream: str, n: int) -> list[AnyEvent]:
    events, messages = mixed_messages(n)
    producer = RedisStreamProducer(url, stream)
    producer.publish_raw(payload for _, payload in messages)
    producer.close()
    return events


def _pending(client: redis.Redis, stream: str) -> int:
    count: int = client.xpending(stream, "arrive-ingest")["pending"]
    return count


def test_poison_is_dead_lettered_and_every_valid_event_applied(
    redis_url: str, stream: str, client: redis.Redis, clock: ManualClock
) -> None:
    events = _publish(redis_url, stream, 40)
    log: list[str] = []
    source = RedisStreamSource(redis_url, stream)
    dead = RedisStreamDeadLetter(redis_url, stream)
    runner = IngestRunner(source, lambda b: log.extend(e.event_id for e in b), dead, clock)
    run_until(runner, lambda: runner.stats().messages >= 46)
    source.close()
    dead.close()
    assert log == [e.event_id for e in events]
    records = [fields for _, fields in client.xrange(f"{stream}:dead")]
    assert [(r[b"field"].decode(), r[b"payload"]) for r in records] == [
        (p.field, p.payload) for p in POISON
    ]
    assert all(
        p.reason_contains in r[b"reason"].decode() for r, p in zip(records, POISON, strict=True)
    )
    assert _pending(client, stream) == 0


def test_a_consumer_interrupted_mid_batch_loses_nothing_after_a_restart(
    redis_url: str, stream: str, client: redis.Redis, clock: ManualClock, tmp_path: Path
) -> None:
    events = _publish(redis_url, stream, 60)
    applied = EventIdLog(tmp_path / "applied.txt")

    first = RedisStreamSource(redis_url, stream)
    dead = FileDeadLetter(tmp_path / "dead.jsonl")
    with pytest.raises(RuntimeError, match="killed"):
        IngestRunner(first, CrashingApply(applied), dead, clock, batch_size=10).run()
    first.close()  # nothing of the third batch was acknowledged
    assert _pending(client, stream) == 10
    _recover(redis_url, stream, applied, dead, clock, {e.event_id for e in events})
    assert applied.ids() == {e.event_id for e in events}
    assert {r["field"] for r in read_dead_letters(dead.path)} == {p.field for p in POISON}


def test_a_sigkilled_runner_process_loses_nothing_after_a_restart(
    redis_url: str, stream: str, client: redis.Redis, clock: ManualClock, tmp_path: Path
) -> None:
    events = _publish(redis_url, stream, 60)
    applied = EventIdLog(tmp_path / "applied.txt")
    dead = FileDeadLetter(tmp_path / "dead.jsonl")
    settings = {"backend": "redis", "url": redis_url, "stream": stream, "group": "arrive-ingest"}
    settings |= {"applied": str(applied.path), "dead": str(dead.path)}
    run_and_kill({**settings, "block_after": 25, "batch_size": 10})
    killed_with = applied.ids()
    assert 25 <= len(killed_with) < len(events)
    assert _pending(client, stream) > 0
    _recover(redis_url, stream, applied, dead, clock, {e.event_id for e in events})
    assert applied.ids() == {e.event_id for e in events}
    payloads = {
        r.get("payload_text", r.get("payload_base64")) for r in read_dead_letters(dead.path)
    }
    assert len(payloads) == len(POISON)
    assert _pending(client, stream) == 0


def _recover(
    url: str,
    stream: str,
    applied: EventIdLog,
    dead: FileDeadLetter,
    clock: ManualClock,
    expected: set[str],
) -> None:
    """Restart a runner (same group and consumer name) and run it until every expected
    event is applied (redelivered entries come first, so nothing is pending then)."""
    source = RedisStreamSource(url, stream)
    runner = IngestRunner(source, applied.apply, dead, clock, batch_size=10, poll_timeout_s=0.1)
    run_until(runner, lambda: applied.ids() >= expected)
    source.close()
