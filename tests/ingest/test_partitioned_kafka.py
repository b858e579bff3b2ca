"""Partitioned ingest on a real tansu broker and a real redis-server: two ``arrive ingest
--partitioned`` processes of one group end with the features of one engine that saw every
event — also when one is SIGKILLed mid-stream and a new one joins — and a poison message
in one partition is dead-lettered while every other event is applied."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from arrive.features.online.engine import OnlineEngine
from arrive.ingest.deadletter import read_dead_letters
from arrive.ingest.kafka import KafkaEventProducer
from arrive.ingest.source import entity_key
from arrive.schema.codec import encode_event
from arrive.schema.frame import frame_to_events
from arrive.store.base import EntityKey
from arrive.store.keys import KeyLayout
from arrive.store.memory import InMemoryStore
from arrive.store.redis import RedisStore, RedisStoreConfig
from arrive.testing.servers.kafka_broker import create_topic
from arrive.testing.servers.ports import free_port
from arrive.testing.source_contract import POISON, unique_name

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

LATENESS_S = 3 * 86400.0  # partitions are consumed at their own pace; per-order order holds
OWNER_PARTITIONS = 4
WAIT_S = 60.0
KAFKA_QUERY = "session.timeout.ms=2000&heartbeat.interval.ms=300&fetch.wait.max.ms=50"

Values = dict[EntityKey, dict[str, object]]


@pytest.fixture(scope="module")
def events() -> list[Any]:
    from arrive.testing.factories import random_marketplace

    frame = random_marketplace(11, n_orders=160).events.sort("event_time", "event_id")
    return list(frame_to_events(frame))


@pytest.fixture(scope="module")
def expected(events: list[Any]) -> Values:
    """What one engine that saw every event holds (the pipeline row aside)."""
    reference = InMemoryStore()
    OnlineEngine(reference, lateness_s=LATENESS_S).apply(events)
    keys = [k for k in reference._rows if k[0] != "pipeline"]
    rows = reference.get_many(keys)
    return {k: {n: v.value for n, v in (r or {}).items()} for k, r in zip(keys, rows, strict=True)}


@pytest.fixture(scope="module")
def messages(events: list[Any]) -> list[tuple[bytes | None, bytes]]:
    """Every event keyed by its entity, the poison (all under one key) among them."""
    keyed: list[tuple[bytes | None, bytes]] = [
        (entity_key(e).encode(), encode_event(e)) for e in events
    ]
    for i, poison in enumerate(POISON):
        keyed.insert(len(keyed) * (i + 1) // (len(POISON) + 1), (b"poison", poison.payload))
    return keyed


@pytest.fixture
def topic(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    messages: list[tuple[bytes | None, bytes]],
) -> str:
    """The input topic (3 partitions) with the first ``request.param`` of the messages
    (default: all), and its owned topic."""
    name = unique_name("partitioned")
    create_topic(kafka_bootstrap, name, partitions=3)
    create_topic(kafka_bootstrap, f"{name}.owned", partitions=OWNER_PARTITIONS)
    published = getattr(request, "param", len(messages))
    KafkaEventProducer(kafka_bootstrap, name).publish_raw(messages[:published])
    return name


class Group:
    """``arrive ingest --partitioned`` child processes of one group, stopped at the end."""

    def __init__(self, bootstrap: str, topic: str, redis_url: str, tmp: Path) -> None:
        self.prefix = unique_name("part")
        self.source = f"kafka://{bootstrap}?topic={topic}&group={self.prefix}&{KAFKA_QUERY}"
        self.store = f"{redis_url}?prefix={self.prefix}"
        self.redis_url = redis_url
        self.tmp = tmp
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        n = len(self.children)
        args = [
            *("ingest", "--partitioned", "--source", self.source, "--store", self.store),
            *("--dead-letter", str(self.tmp / f"dead-{n}.jsonl"), "--no-idle-advance"),
            *("--lateness-s", str(LATENESS_S), "--batch-size", "200", "--checkpoint-s", "0.3"),
            "--quiet",
            *extra,
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        with (self.tmp / f"child-{n}.log").open("wb") as log:
            command = [sys.executable, "-m", "arrive.cli", *args]
            child = subprocess.Popen(command, stderr=log, env=env)
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)

    def values(self, keys: list[EntityKey]) -> Values:
        # The checker's own reads: not the service's 0.5 s limit, which a loaded
        # machine exceeds (a timed-out check is no finding about the features).
        config = RedisStoreConfig(
            url=self.redis_url,
            key_prefix=self.prefix,
            socket_timeout_s=10.0,
            connect_timeout_s=10.0,
            retries=2,
        )
        store = RedisStore(config)
        rows = store.get_many(keys)
        store.close()
        return {
            k: {n: v.value for n, v in (r or {}).items()} for k, r in zip(keys, rows, strict=True)
        }

    def feature_keys(self) -> int:
        client = redis.Redis.from_url(self.redis_url)
        count = sum(1 for _ in client.scan_iter(KeyLayout(self.prefix).feature_pattern()))
        client.close()
        return count

    def checkpoints(self) -> int:
        client = redis.Redis.from_url(self.redis_url)
        count = sum(1 for _ in client.scan_iter(f"arrive:ingest:{self.prefix}:checkpoint:*"))
        client.close()
        return count

    def dead_letters(self) -> list[dict[str, Any]]:
        return [r for p in sorted(self.tmp.glob("dead-*.jsonl")) for r in read_dead_letters(p)]


@pytest.fixture
def group(kafka_bootstrap: str, topic: str, redis_url: str, tmp_path: Path) -> Iterator[Group]:
    running = Group(kafka_bootstrap, topic, redis_url, tmp_path)
    yield running
    running.stop()


def _wait(
    condition: Callable[[], bool], what: str, group: Group, explain: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        gone = all(child.poll() is not None for child in group.children)
        if gone or time.monotonic() > deadline:
            logs = "\n".join(p.read_text()[-2000:] for p in sorted(group.tmp.glob("child-*.log")))
            pytest.fail(f"{what}: not within {WAIT_S:g} s\n{explain()}\n{logs}")
        time.sleep(0.3)


def _differences(group: Group, expected: Values) -> str:
    """The first few features that differ from one engine's (for a failure message)."""
    got = group.values(list(expected))
    lines = [
        f"{key} {name}: {got[key].get(name)!r} != {value!r}"
        for key, row in expected.items()
        for name, value in row.items()
        if got[key].get(name) != value
    ]
    return "\n".join(lines[:10]) + f"\n({len(lines)} features differ)"


def test_two_processes_write_the_features_of_one_and_dead_letter_the_poison(
    group: Group, expected: Values
) -> None:
    port = free_port()
    group.start("--metrics-port", str(port))
    group.start()
    keys = list(expected)
    _wait(lambda: group.values(keys) == expected, "features equal to one engine's", group)
    assert group.feature_keys() == len(expected) + 1  # and the pipeline row: no stray key
    _wait(lambda: len(group.dead_letters()) == len(POISON), "poison dead-lettered", group)
    assert sorted(r["field"] for r in group.dead_letters()) == sorted(p.field for p in POISON)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    applied = re.search(r'arrive_ingest_events_total\{outcome="applied"\} (\S+)', metrics)
    assert applied is not None, metrics
    assert float(applied.group(1)) > 0


def test_a_missing_internal_topic_is_named_in_one_line(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from arrive.cli.main import run

    name = unique_name("no-owned")
    create_topic(kafka_bootstrap, name, partitions=1)
    source = f"kafka://{kafka_bootstrap}?topic={name}&group=g"
    dead = str(tmp_path / "dead.jsonl")
    args = ["ingest", "--partitioned", "--source", source, "--store", redis_url]
    code = run([*args, "--dead-letter", dead, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"the internal topic {name}.owned is missing" in err
    assert "Traceback" not in err


HALF = 1800  # of the ~3,500 messages: published before the kill, the rest after it


@pytest.mark.parametrize("topic", [HALF], indirect=True)
def test_a_consumer_killed_mid_stream_is_replaced_without_loss_or_double_counting(
    group: Group,
    expected: Values,
    kafka_bootstrap: str,
    topic: str,
    messages: list[tuple[bytes | None, bytes]],
) -> None:
    first = group.start()
    group.start()
    _wait(lambda: group.checkpoints() >= 1, "a first owner checkpoint", group)
    assert group.values(list(expected)) != expected  # mid-stream: half is not even sent
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    group.start()  # a new member joins as the killed one leaves
    KafkaEventProducer(kafka_bootstrap, topic).publish_raw(messages[HALF:])
    keys = list(expected)
    _wait(
        lambda: group.values(keys) == expected,
        "features equal to one engine's",
        group,
        lambda: _differences(group, expected),
    )
    assert group.feature_keys() == len(expected) + 1
