"""Online features survive a SIGKILL: kill the ingest process mid-batch, restart it
from its checkpoint, and the features equal those of an uninterrupted run — with
Redis Streams and with Kafka, features in a real Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arrive.features.online.engine import OnlineEngine
from arrive.ingest.deadletter import read_dead_letters
from arrive.ingest.kafka import KafkaEventProducer
from arrive.ingest.redis_streams import RedisStreamProducer
from arrive.ingest.source import entity_key
from arrive.schema.codec import encode_event
from arrive.schema.frame import frame_to_events
from arrive.store.base import EntityKey, to_epoch_us
from arrive.store.memory import InMemoryStore
from arrive.store.redis import RedisStore, RedisStoreConfig
from arrive.testing.servers.ingest_child import feature_runner, open_source, run_and_kill
from arrive.testing.servers.kafka_broker import create_topic
from arrive.testing.source_contract import POISON, run_until, unique_name

PARTITIONS = [0, 1, 2]
LATENESS_S = 3 * 86400.0  # Kafka partitions interleave entities; per-entity order holds


def _marketplace() -> list[Any]:
    from arrive.testing.factories import random_marketplace

    frame = random_marketplace(11, n_orders=120).events.sort("event_time", "event_id")
    return list(frame_to_events(frame))


def _messages(events: list[Any]) -> list[tuple[bytes | None, bytes]]:
    out: list[tuple[bytes | None, bytes]] = []
    for i, event in enumerate(events):
        out.append((entity_key(event).encode(), encode_event(event)))
        if i % 97 == 0 and i // 97 < len(POISON):
            out.append((b"poison", POISON[i // 97].payload))
    return out


def _values(url: str, prefix: str, keys: list[EntityKey]) -> dict[EntityKey, dict[str, object]]:
    store = RedisStore(RedisStoreConfig(url=url, key_prefix=prefix))
    rows = store.get_many(keys)
    store.close()
    return {k: {n: v.value for n, v in (r or {}).items()} for k, r in zip(keys, rows, strict=True)}


def _keys(events: list[Any]) -> list[EntityKey]:
    reference = InMemoryStore()
    OnlineEngine(reference).apply(events)
    return [k for k in reference._rows if k[0] != "pipeline"]


def _run_to_end(settings: dict[str, Any], last: Any) -> None:
    """Run until the last event is applied, then until three polls in a row are empty."""
    source = open_source(settings)
    runner = feature_runner(settings, source)
    engine = runner.apply.engine  # type: ignore[attr-defined]
    last_us = to_epoch_us(last.event_time)
    run_until(runner, lambda: (engine.watermark_us or 0) >= last_us)
    empty = 0
    while empty < 3:
        empty = 0 if runner.run_once() else empty + 1
    runner.flush()
    source.close()


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ]
)
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        stream = unique_name("kill-features")
        return {"backend": "redis", "url": url, "stream": stream}
    bootstrap: str = request.getfixturevalue("kafka_bootstrap")
    topic = unique_name("kill-features")
    create_topic(bootstrap, topic, partitions=len(PARTITIONS))
    return {"backend": "kafka", "url": bootstrap, "stream": topic, "partitions": PARTITIONS}


def _publish(backend: dict[str, Any], messages: list[tuple[bytes | None, bytes]]) -> None:
    if backend["backend"] == "redis":
        producer = RedisStreamProducer(backend["url"], backend["stream"])
        producer.publish_raw(payload for _, payload in messages)
        producer.close()
    else:
        KafkaEventProducer(backend["url"], backend["stream"]).publish_raw(messages)


def test_a_killed_ingest_restarts_to_the_features_of_an_uninterrupted_run(
    backend: dict[str, Any], redis_url: str, tmp_path: Path
) -> None:
    events = _marketplace()
    _publish(backend, _messages(events))
    common = {**backend, "store": redis_url, "batch_size": 40, "lateness_s": LATENESS_S}
    killed = {
        **common,
        "group": "killed",
        "prefix": unique_name("killed"),
        "state": str(tmp_path / "killed.state"),
        "dead": str(tmp_path / "killed-dead.jsonl"),
    }
    run_and_kill({**killed, "block_after": len(events) // 2})
    _run_to_end(killed, events[-1])
    straight = {
        **common,
        "group": "straight",
        "prefix": unique_name("straight"),
        "state": str(tmp_path / "straight.state"),
        "dead": str(tmp_path / "straight-dead.jsonl"),
    }
    _run_to_end(straight, events[-1])
    keys = _keys(events)
    assert len(keys) > 20
    after_kill = _values(redis_url, killed["prefix"], keys)
    other = _values(redis_url, straight["prefix"], keys)
    assert after_kill == other
    reference = InMemoryStore()
    OnlineEngine(reference, lateness_s=LATENESS_S).apply(events)
    expected = reference.get_many(keys)
    assert after_kill == {
        k: {n: v.value for n, v in (r or {}).items()} for k, r in zip(keys, expected, strict=True)
    }
    dead = read_dead_letters(Path(killed["dead"]))
    assert {r["field"] for r in dead} == {p.field for p in POISON}
