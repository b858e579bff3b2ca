"""Partitioned ingest: events/s with 1, 2 and 4 `arrive ingest --partitioned` processes.

Usage: python bench/ingest_partitions.py [--orders 20000] [--days 2] [--consumers 1 2 4]
       python bench/ingest_partitions.py --data DIR   (the events of a data directory,
       e.g. one written by `arrive simulate`, instead of a random marketplace)

Starts a tansu broker and a redis-server; for each consumer count, creates a fresh
4-partition topic (plus its 4-partition ``.owned`` topic), starts that many processes in
one group, waits ``--settle-s`` for them to start and join, then publishes a random
marketplace's events and times them from the first publish until the features in Redis
equal those of one engine that applied every event (parity: keys whose values differ;
must be 0). The same run also times one plain `arrive ingest` (not partitioned) as the
baseline. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from arrive import datadir
from arrive.features.online.engine import OnlineEngine
from arrive.ingest.kafka import KafkaEventProducer
from arrive.schema.frame import frame_to_events
from arrive.store.base import EntityKey
from arrive.store.keys import KeyLayout
from arrive.store.memory import InMemoryStore
from arrive.store.redis import RedisStore, RedisStoreConfig
from arrive.testing.factories import random_marketplace
from arrive.testing.servers.kafka_broker import create_topic, running_broker
from arrive.testing.servers.redis_server import RedisServer

PARTITIONS = 4
LATENESS_S = 3 * 86400.0
KAFKA_QUERY = "session.timeout.ms=6000&heartbeat.interval.ms=500&fetch.wait.max.ms=50"
Values = dict[EntityKey, dict[str, object]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--settle-s", type=float, default=15.0)
    parser.add_argument("--data", type=Path, help="a data directory's events instead")
    args = parser.parse_args()
    if args.data is not None:
        frame = datadir.scan_events(args.data).collect()
    else:
        frame = random_marketplace(7, n_orders=args.orders, days=args.days).events
    events = list(frame_to_events(frame.sort("event_time", "event_id")))
    expected = _reference(events)
    server = RedisServer()
    server.start()
    results: list[dict[str, Any]] = []
    try:
        with running_broker() as broker, tempfile.TemporaryDirectory() as tmp:
            run = _Runner(broker.bootstrap_servers, server.url, Path(tmp), expected, args)
            results.append(run.time("plain", 1, events))
            for n in args.consumers:
                results.append(run.time("partitioned", n, events))
    finally:
        server.stop()
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps({"date": stamp, "machine": machine, "events": len(events), "runs": results}))


def _reference(events: list[Any]) -> Values:
    store = InMemoryStore()
    OnlineEngine(store, lateness_s=LATENESS_S).apply(events)
    keys = [k for k in store._rows if k[0] != "pipeline"]
    rows = store.get_many(keys)
    return {k: {n: v.value for n, v in (r or {}).items()} for k, r in zip(keys, rows, strict=True)}


class _Runner:
    def __init__(
        self, bootstrap: str, url: str, tmp: Path, expected: Values, args: argparse.Namespace
    ) -> None:
        self.bootstrap, self.url, self.tmp = bootstrap, url, tmp
        self.expected = expected
        self.timeout_s, self.settle_s = args.timeout_s, args.settle_s

    def time(self, mode: str, n: int, events: list[Any]) -> dict[str, Any]:
        prefix = f"{mode}-{n}-{time.monotonic_ns()}"
        create_topic(self.bootstrap, prefix, PARTITIONS)
        create_topic(self.bootstrap, f"{prefix}.owned", PARTITIONS)
        source = f"kafka://{self.bootstrap}?topic={prefix}&group={prefix}&{KAFKA_QUERY}"
        args = [
            *("ingest", "--source", source, "--store", f"{self.url}?prefix={prefix}"),
            *("--dead-letter", str(self.tmp / f"{prefix}.jsonl"), "--no-idle-advance"),
            *("--lateness-s", str(LATENESS_S), "--quiet"),
            *(["--partitioned"] if mode == "partitioned" else []),
        ]
        children = [
            subprocess.Popen([sys.executable, "-m", "arrive.cli", *args], stderr=subprocess.DEVNULL)
            for _ in range(n)
        ]
        mismatches = len(self.expected)
        try:
            time.sleep(self.settle_s)
            started = time.perf_counter()
            KafkaEventProducer(self.bootstrap, prefix).publish(events)
            published = time.perf_counter()
            while time.perf_counter() - started < self.timeout_s:
                time.sleep(0.1)
                mismatches = self._mismatches(prefix)
                if mismatches == 0:
                    break
            done = time.perf_counter()
        finally:
            for child in children:
                child.send_signal(signal.SIGTERM)
            for child in children:
                child.wait(30)
        seconds = done - started
        return {
            "mode": mode,
            "consumers": n,
            "mismatched_keys": mismatches,
            "keys": len(self.expected),
            "feature_keys_written": self._written(prefix),
            "publish_s": round(published - started, 2),
            "seconds": round(seconds, 2),
            "events_per_s": round(len(events) / seconds),
        }

    def _written(self, prefix: str) -> int:
        client = redis.Redis.from_url(self.url)
        count = sum(1 for _ in client.scan_iter(KeyLayout(prefix).feature_pattern()))
        client.close()
        return count

    def _mismatches(self, prefix: str) -> int:
        store = RedisStore(RedisStoreConfig(url=self.url, key_prefix=prefix))
        keys = list(self.expected)
        rows = store.get_many(keys)
        store.close()
        got = [{n: v.value for n, v in (r or {}).items()} for r in rows]
        return sum(g != self.expected[k] for k, g in zip(keys, got, strict=True))


if __name__ == "__main__":
    main()
