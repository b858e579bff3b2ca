"""Ingest throughput into online features: events/s of one process, decode → engine → store.

Usage: python bench/ingest_features.py DATA_DIR [--events 400000] [--runs 3] [--batch-size 1000]
                                        [--stores in-process,redis] [--redis-url URL]

The first ``--events`` events of DATA_DIR's log (e.g. ``arrive simulate --out DATA_DIR``)
are encoded as the JSON a Kafka or Redis consumer receives and held in memory; each
run feeds them through IngestRunner (decode + validation + dead letters + commit)
into the OnlineEngine writing to the in-process store and to Redis (a throw-away
redis-server unless --redis-url is given). Prints JSON with every run and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from arrive import datadir
from arrive.clock import SystemClock
from arrive.ingest.deadletter import MemoryDeadLetter
from arrive.ingest.pipeline import PipelineSettings, build_pipeline
from arrive.ingest.source import MemorySource, MemoryStream
from arrive.schema.codec import encode_event
from arrive.schema.frame import frame_to_events
from arrive.store.base import OnlineStore
from arrive.store.memory import InMemoryStore
from arrive.testing.servers.redis_server import redis_at


def _payloads(directory: Path, n: int) -> list[bytes]:
    log = datadir.scan_events(directory).head(n).collect()
    return [encode_event(e) for e in frame_to_events(log)]


def _run(payloads: list[bytes], store: OnlineStore, batch_size: int) -> float:
    source = MemorySource(MemoryStream(entries=[(None, p) for p in payloads]), finite=True)
    settings = PipelineSettings(batch_size=batch_size, max_future_s=None)
    pipeline = build_pipeline(source, store, MemoryDeadLetter(), SystemClock(), settings)
    started = time.perf_counter()
    stats = pipeline.runner.run()
    events_per_s = stats.events_applied / (time.perf_counter() - started)
    pipeline.close()
    return events_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--stores", default="in-process,redis")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    payloads = _payloads(args.data_dir, args.events)
    results: dict[str, list[float]] = {}
    with redis_at(args.redis_url) as url:
        from arrive.store.redis import RedisStore, RedisStoreConfig

        makers: dict[str, Callable[[int], OnlineStore]] = {
            "in-process": lambda i: InMemoryStore(),
            "redis": lambda i: RedisStore(
                RedisStoreConfig(url=url, key_prefix=f"bench{i}", socket_timeout_s=5.0)
            ),
        }
        for name in args.stores.split(","):
            make = makers[name]
            results[name] = [
                round(_run(payloads, make(i), args.batch_size)) for i in range(args.runs)
            ]
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "events": len(payloads),
                "batch_size": args.batch_size,
                "median_events_per_s": {k: statistics.median(v) for k, v in results.items()},
                "runs": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
