"""The batch read path against a raw MGET of the same keys, in one run, in process.

Usage: python bench/read_path.py [--registry DIR] [--rounds 7] [--calls 300] [--gc service]

The setup of ``serve_bench.py`` (a redis-server of its own filled with the Food Delivery
event log shifted to end now, the production model of ``--registry``, trained when it has
none), then the last 2,000 orders in batches of 100, read two ways:

* ``600 keys``: each order's six rows (the engine's, store, day, market-day, market,
  courier), 600 keys a read without removing repeats: the reads of the issue's figure;
* ``plan``: the keys the service's read plan asks for a batch of 100 (repeats removed);
* ``one order``: the keys of the plan of one order (the single request's read).

Per round and shape, each arm ``--calls`` times, the arms interleaved call by call:

* ``raw MGET``: the MGET on the service's pipelined connection, its key strings built
  each call as the stores build them (bytes back; the breakdown times the MGET alone);
* ``get_many``: ``AsyncRedisStore.get_many``, rows of ``FeatureValue``.

Timed with the garbage collector set as the service sets it (``--gc service``: the heap
loaded so far frozen, young collections every 50,000 allocations) or Python's default
(``--gc default``, 700: a read's decoding then triggers a few collections of its own).

Prints rows/s (keys over the median call) per arm and round, the medians over rounds and
the median call, and where a read's time goes (building the keys, the MGET, decoding
into rows, each timed alone on the same read). Then the whole batch path from the keys
to the model's matrix (``get_many``, the reader's ``features``, the encoder), with what
the orders give themselves worked out beforehand, as the service does while the read
is out.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bare_path
import msgspec
import serve_bench
import uvloop

from arrive import datadir
from arrive.features.online.reader import OnlineFeatures
from arrive.schema.eta import EtaRequest, to_order
from arrive.serving.compiled import CompiledModel
from arrive.serving.http.app import _settle_heap
from arrive.store.base import EntityKey
from arrive.store.redis import AsyncRedisStore, RedisStoreConfig
from arrive.store.redis_pipe import PipelinedRedis
from arrive.testing.servers.eta_service import order_body

ARMS = ("raw MGET", "get_many")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=serve_bench.DEFAULT_CSV)
    parser.add_argument(
        "--registry", type=Path, default=serve_bench.ROOT / ".arrive" / "bench-registry"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300, help="calls per arm, shape and round")
    parser.add_argument("--gc", choices=("service", "default"), default="service")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arrive-read-path-") as tmp:
        work = Path(tmp)
        with serve_bench.filled_market(args.csv, args.registry, work) as (registry, live, url):
            uvloop.run(_bench(args, registry, live, url))


async def _bench(args: argparse.Namespace, registry: Path, live: Path, url: str) -> None:
    bundle = bare_path.production(registry)
    reader = OnlineFeatures.from_schema(bundle.features, max_lag_s=86400)
    now = datetime.now(UTC)
    bodies = [
        order_body(row)
        for row in datadir.read_orders(live).sort("created_at").tail(2000).iter_rows(named=True)
    ]
    orders = [
        to_order(msgspec.convert(body, EtaRequest), f"r{i}", now) for i, body in enumerate(bodies)
    ]
    batches = [orders[i : i + 100] for i in range(0, len(orders), 100)]
    day = datetime.now(bare_path.zone(bundle)).date().isoformat()
    six: list[list[EntityKey]] = [
        [
            key
            for body in bodies[i : i + 100]
            for key in [("pipeline", "engine"), *bare_path.order_keys(body, day)]
        ]
        for i in range(0, len(bodies), 100)
    ]
    plans = [reader.plan(batch, now).keys for batch in batches]
    singles = [reader.plan([item], now).keys for item in orders[:100]]
    store = AsyncRedisStore(RedisStoreConfig(url=url))
    raw = PipelinedRedis(url, where="bench", socket_timeout_s=5.0, connect_timeout_s=5.0)
    plan = store._plan  # the keys and decoding the store uses, for the breakdown
    if args.gc == "service":
        _settle_heap()
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    print(f"\n{when}, {args.rounds} rounds x {args.calls} calls, gc {args.gc}")
    for shape, reads in (("600 keys", six), ("plan", plans), ("one order", singles)):
        sizes = [len(keys) for keys in reads]
        print(f"\n{shape}: {statistics.median(sizes):.0f} keys a read (median)")
        arms: dict[str, Callable[[list[EntityKey]], Awaitable[Any]]] = {
            "raw MGET": lambda keys: raw.execute("MGET", *plan.read_keys(keys)),
            "get_many": store.get_many,
        }
        rounds = [await _round(arms, reads, args.calls) for _ in range(args.rounds)]
        for arm in ARMS:
            rates = [r[arm][0] for r in rounds]
            runs = " / ".join(f"{x / 1e3:,.0f}k" for x in rates)
            p50 = statistics.median(r[arm][1] for r in rounds)
            print(
                f"  {arm:12} {statistics.median(rates) / 1e3:8,.0f}k rows/s  ({runs}); "
                f"p50 {p50:,.0f} us a call"
            )
        share = statistics.median(r["get_many"][0] / r["raw MGET"][0] for r in rounds)
        print(f"  get_many / raw MGET: {share:.0%} (median of the rounds' ratios)")
        await _breakdown(raw, plan, reads)
    await _whole(args, store, reader, bundle, batches, now)
    await raw.aclose()
    await store.close()


async def _round(
    arms: dict[str, Callable[[list[EntityKey]], Awaitable[Any]]],
    reads: list[list[EntityKey]],
    calls: int,
) -> dict[str, tuple[float, float]]:
    """Per arm: rows/s (keys over the median call) and the median call in µs."""
    took: dict[str, list[float]] = {arm: [] for arm in arms}
    rows: dict[str, list[int]] = {arm: [] for arm in arms}
    for i in range(calls):
        keys = reads[i % len(reads)]
        for arm, read in arms.items():
            start = time.perf_counter()
            await read(keys)
            took[arm].append(time.perf_counter() - start)
            rows[arm].append(len(keys))
    return {
        arm: (
            statistics.median(rows[arm]) / statistics.median(took[arm]),
            statistics.median(took[arm]) * 1e6,
        )
        for arm in arms
    }


async def _breakdown(raw: PipelinedRedis, plan: Any, reads: list[list[EntityKey]]) -> None:
    parts: dict[str, list[float]] = {"keys": [], "MGET": [], "rows": []}
    for keys in reads * 10:
        t0 = time.perf_counter()
        names = plan.read_keys(keys)
        t1 = time.perf_counter()
        packed = await raw.execute("MGET", *names)
        t2 = time.perf_counter()
        plan.rows(names, packed)
        t3 = time.perf_counter()
        for part, took in zip(parts.values(), (t1 - t0, t2 - t1, t3 - t2), strict=True):
            part.append(took * 1e6)
    alone = statistics.median(len(keys) for keys in reads) / statistics.median(parts["MGET"])
    print(
        "  one read, medians: "
        + ", ".join(f"{part} {statistics.median(v):,.0f} us" for part, v in parts.items())
        + f" (rows: FeatureValue rows); the MGET alone: {alone * 1e3:,.0f}k rows/s"
    )


async def _whole(
    args: argparse.Namespace,
    store: AsyncRedisStore,
    reader: OnlineFeatures,
    bundle: Any,
    batches: list[Any],
    now: datetime,
) -> None:
    encoder = CompiledModel(bundle.model, "none").encoder
    took: dict[str, list[float]] = {"read": [], "features": [], "encode": [], "whole": []}
    for _ in range(args.rounds):
        for batch in batches * 5:
            plan = reader.plan(batch, now)
            given = reader.requested(batch, plan)
            t0 = time.perf_counter()
            rows = await store.get_many(plan.keys)
            t1 = time.perf_counter()
            features = reader.features(batch, plan, rows, given)
            t2 = time.perf_counter()
            encoder.encode([f.values for f in features])
            t3 = time.perf_counter()
            for part, spent in zip(
                took.values(), (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True
            ):
                part.append(spent * 1e6)
    print(
        f"\nbatch of 100, keys to the model's matrix (medians of {len(took['whole'])}): "
        + ", ".join(f"{part} {statistics.median(v):,.0f} us" for part, v in took.items())
    )


if __name__ == "__main__":
    main()
