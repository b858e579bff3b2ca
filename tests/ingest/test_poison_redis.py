"""`arrive ingest` on a real Redis stream fed poison entries by hand (any bytes at all):
each becomes one dead letter with its reason, the good entries around it are applied,
the batch is acknowledged, and a restart dead-letters nothing again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Final

import pytest
import redis

from arrive.ingest.deadletter import read_dead_letters, record_payload
from arrive.schema.codec import encode_event
from arrive.schema.events import OrderCreated
from arrive.testing.servers.eta_service import wait_for
from arrive.testing.source_contract import START, unique_name

pytestmark = [pytest.mark.redis, pytest.mark.faults]

GROUP: Final = "g"
#: (payload of the ``event`` field, field and reason its dead letter must name).
POISON: Final = (
    (
        b'{"type":"order_created","event_id":"p5\xff\xfe","event_time":"2025-03-03T00:00:00Z",'
        b'"schema_version":1,"order_id":"p5"}',
        "event_id",
        "not valid UTF-8",
    ),
    (b"\xff\xfe\xfd", "$", "not valid JSON"),
    (b"", "$", "empty message"),
    (b"[1, 2", "$", "Expected `object`"),
    (b'{"type":"order_created","event_id":"' + b"x" * 2_000_000 + b'"}', "event_id", "length"),
    (
        b'{"type":"order_created","event_id":"e","order_id":"o",'
        b'"event_time":"0001-01-01T00:00:00+01:00"}',
        "event_time",
        "out of range",
    ),
)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def _order(i: int) -> bytes:
    when = START + timedelta(minutes=i)
    return encode_event(OrderCreated(event_id=f"good-{i}", event_time=when, order_id=f"o{i}"))


class Ingest:
    """One `arrive ingest` process on ``stream``, stopped with SIGTERM."""

    def __init__(self, redis_url: str, stream: str, dead: Path) -> None:
        source = f"{redis_url}?stream={stream}&group={GROUP}"
        command = [sys.executable, "-m", "arrive.cli", "ingest", "--source", source]
        command += ["--dead-letter", str(dead), "--no-idle-advance", "--quiet"]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy()
        )

    def stop(self) -> str:
        """SIGTERM, then the exit code must be 0; returns what it printed on stderr."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        text = err.decode()
        assert self.proc.returncode == 0, text
        assert "Traceback" not in text
        return text

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _done(client: redis.Redis, stream: str, last_id: bytes, ingest: Ingest) -> bool:
    """Every entry up to ``last_id`` was delivered and acknowledged (or the process died)."""
    if ingest.proc.poll() is not None:
        return True
    (group,) = client.xinfo_groups(stream)
    return bool(group["last-delivered-id"] == last_id and group["pending"] == 0)


def _run_until_acknowledged(
    redis_url: str, client: redis.Redis, stream: str, dead: Path, last_id: bytes
) -> str:
    ingest = Ingest(redis_url, stream, dead)
    try:
        wait_for(lambda: _done(client, stream, last_id, ingest), 120, "the stream to be acked")
        assert ingest.proc.poll() is None, ingest.proc.communicate()[1].decode()
        return ingest.stop()
    finally:
        ingest.kill()


def test_poison_entries_are_dead_lettered_once_and_ingest_goes_on(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    stream = unique_name("poison")
    dead = tmp_path / "dead.jsonl"
    client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    client.xadd(stream, {"event": _order(0)})
    ids = [client.xadd(stream, {"event": payload}) for payload, _, _ in POISON]
    client.xadd(stream, {"other": b"no event field \xff"})
    last = client.xadd(stream, {"event": _order(1)})

    err = _run_until_acknowledged(redis_url, client, stream, dead, last)
    assert "2 events applied" in err
    assert f"{len(POISON) + 1} dead-lettered" in err
    records = read_dead_letters(dead)
    assert [r["offset"].encode() for r in records[: len(POISON)]] == ids
    for record, (payload, field, reason) in zip(records, POISON, strict=False):
        assert (record["field"], record_payload(record)) == (field, payload)
        assert reason in record["reason"]
    assert records[-1]["field"] == "type"  # the entry without an `event` field

    restart = client.xadd(stream, {"event": _order(2)})
    err = _run_until_acknowledged(redis_url, client, stream, dead, restart)
    assert "1 events applied" in err
    assert "0 dead-lettered" in err
    assert len(read_dead_letters(dead)) == len(POISON) + 1


def test_pending_entries_deleted_by_hand_are_dead_lettered_once(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    """A consumer died holding a batch (pending, unacknowledged) and someone deleted one
    of its entries by hand: the restarted consumer dead-letters that entry and the bad
    one once each, and applies the rest."""
    stream = unique_name("poison-pending")
    dead = tmp_path / "dead.jsonl"
    client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    client.xadd(stream, {"event": _order(0)})
    gone = client.xadd(stream, {"event": POISON[0][0]})
    bad = client.xadd(stream, {"event": b"not json"})
    last = client.xadd(stream, {"event": _order(1)})
    client.xreadgroup(GROUP, "ingest-1", {stream: ">"})  # delivered, never acknowledged
    client.xdel(stream, gone)

    err = _run_until_acknowledged(redis_url, client, stream, dead, last)
    assert "2 events applied" in err
    records = read_dead_letters(dead)
    assert [(r["offset"].encode(), r["field"]) for r in records] == [(gone, "$"), (bad, "$")]
    assert "empty message" in records[0]["reason"]

    restart = client.xadd(stream, {"event": _order(2)})
    err = _run_until_acknowledged(redis_url, client, stream, dead, restart)
    assert "0 dead-lettered" in err
    assert len(read_dead_letters(dead)) == 2
