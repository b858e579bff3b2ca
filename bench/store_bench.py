"""Online store: get_many latency (one request of a few entities) and put_many throughput.

Usage: python bench/store_bench.py [--redis-url URL] [--runs 3] [--calls 10000]

Backends: InMemoryStore, the same behind FreshStore, RedisStore (blocking) and
AsyncRedisStore (asyncio loop). Without ``--redis-url`` a private redis-server is
started on a free loopback port (no persistence) and stopped at the end.
Each figure is the median over ``--runs`` runs. Latency is per ``get_many`` of
``--entities`` entities with ``--features`` features each; throughput counts
entity-feature updates per second through ``put_many`` batches of ``--batch``
entities, every update newer than the stored value (so every one is written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from arrive.clock import SystemClock
from arrive.store import (
    AsyncRedisStore,
    FeatureRow,
    FeatureValue,
    FreshStore,
    InMemoryStore,
    OnlineStore,
    RedisStore,
    RedisStoreConfig,
)
from arrive.store.base import EntityKey
from arrive.testing.servers.redis_server import redis_at

POPULATION = 2_000
TTL_S = {f"f{j}": 3600.0 for j in range(64)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--entities", type=int, default=5)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--updates", type=int, default=200_000, help="entity-feature updates per run"
    )
    args = parser.parse_args()
    with redis_at(args.redis_url) as url:
        results = [_bench(name, make, args) for name, make in _backends(url).items()]
    _print_table(results)
    print(json.dumps({"bench": "store", "python": platform.python_version(), "results": results}))


def _backends(url: str) -> dict[str, Callable[[], Any]]:
    def config() -> RedisStoreConfig:
        return RedisStoreConfig(url=url, key_prefix=f"bench-{uuid.uuid4().hex[:8]}")

    return {
        "memory": InMemoryStore,
        "memory+fresh": lambda: FreshStore(InMemoryStore(), TTL_S, SystemClock()),
        "redis": lambda: RedisStore(config()),
        "redis-async": lambda: AsyncRedisStore(config()),
    }


def _bench(name: str, make: Callable[[], Any], args: argparse.Namespace) -> dict[str, Any]:
    runs = [_run(make(), args) for _ in range(args.runs)]
    result: dict[str, Any] = {"backend": name}
    for metric in ("get_p50_us", "get_p99_us", "put_updates_per_s"):
        values = [run[metric] for run in runs]
        result[metric] = round(statistics.median(values), 1)
        result[f"{metric}_runs"] = [round(v, 1) for v in values]
    return result


def _run(store: Any, args: argparse.Namespace) -> dict[str, float]:
    if isinstance(store, AsyncRedisStore):
        return asyncio.run(_run_async(store, args))
    try:
        return _run_sync(store, args)
    finally:
        store.close()


def _requests(args: argparse.Namespace) -> list[list[EntityKey]]:
    rng = random.Random(1)
    keys = [("store", str(i)) for i in range(POPULATION)]
    return [rng.sample(keys, args.entities) for _ in range(args.calls)]


def _batches(args: argparse.Namespace, t0_us: int) -> list[list[tuple[EntityKey, FeatureRow]]]:
    """Batches covering ``--updates`` updates; each entity's events move forward in time."""
    n_rows = max(1, args.updates // args.features)
    rows = [
        (("store", str(i % POPULATION)), _row(args.features, i + 1.0, t0_us + i))
        for i in range(n_rows)
    ]
    return [rows[i : i + args.batch] for i in range(0, len(rows), args.batch)]


def _row(features: int, value: float, t_us: int) -> dict[str, FeatureValue]:
    return {f"f{j}": FeatureValue(value + j, t_us) for j in range(features)}


def _run_sync(store: OnlineStore, args: argparse.Namespace) -> dict[str, float]:
    t0_us = time.time_ns() // 1000
    batches = _batches(args, t0_us)
    start = time.perf_counter()
    for batch in batches:
        store.put_many(batch)
    put_s = time.perf_counter() - start
    latencies = []
    for request in _requests(args):
        t = time.perf_counter_ns()
        store.get_many(request)
        latencies.append(time.perf_counter_ns() - t)
    return _figures(latencies, sum(map(len, batches)) * args.features / put_s)


async def _run_async(store: AsyncRedisStore, args: argparse.Namespace) -> dict[str, float]:
    batches = _batches(args, time.time_ns() // 1000)
    start = time.perf_counter()
    for batch in batches:
        await store.put_many(batch)
    put_s = time.perf_counter() - start
    latencies = []
    for request in _requests(args):
        t = time.perf_counter_ns()
        await store.get_many(request)
        latencies.append(time.perf_counter_ns() - t)
    await store.close()
    return _figures(latencies, sum(map(len, batches)) * args.features / put_s)


def _figures(latencies_ns: Sequence[int], updates_per_s: float) -> dict[str, float]:
    cuts = statistics.quantiles(latencies_ns, n=100)
    return {
        "get_p50_us": cuts[49] / 1000,
        "get_p99_us": cuts[98] / 1000,
        "put_updates_per_s": updates_per_s,
    }


def _print_table(results: list[dict[str, Any]]) -> None:
    print(f"{'backend':<14}{'get p50 µs':>12}{'get p99 µs':>12}{'put updates/s':>16}")
    for r in results:
        print(
            f"{r['backend']:<14}{r['get_p50_us']:>12.1f}{r['get_p99_us']:>12.1f}"
            f"{r['put_updates_per_s']:>16,.0f}"
        )


if __name__ == "__main__":
    main()
