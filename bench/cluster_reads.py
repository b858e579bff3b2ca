"""The client's cost of one request's feature read: the async store on a Redis Cluster
against the single-node one, in process, blocks alternating.

Usage: python bench/cluster_reads.py [--blocks 3] [--reads 2000]

A throw-away redis-server and a three-primary cluster (both on this machine), the same
nine keys an ETA request reads (watermark, store, courier, market-day, day, four
cells) in each. Per block and store: 200 unmeasured reads, then ``--reads`` reads one
at a time and ``--reads`` in groups of 8 concurrent ones (as concurrent requests share
a connection). Prints the client's CPU per read (``time.process_time``: the servers'
CPU is not in it) and the wall time per read, each block.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable

from arrive.store.base import AsyncOnlineStore, EntityKey
from arrive.store.redis import AsyncRedisStore, RedisStoreConfig
from arrive.store.redis_cluster import AsyncRedisClusterStore
from arrive.testing.servers.redis_cluster import RedisClusterServer
from arrive.testing.servers.redis_server import RedisServer
from arrive.testing.store_contract import fv

KEYS: list[EntityKey] = [
    ("pipeline", "engine"),
    ("store", "1845"),
    ("courier", "c77"),
    ("market", "3|2024-01-01"),
    ("day", "2024-01-01"),
    *[("cell", f"8a2a1072b59ffff-{i}") for i in range(4)],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=3, help="blocks (each runs both stores)")
    parser.add_argument("--reads", type=int, default=2000, help="measured reads per phase")
    args = parser.parse_args()
    if args.blocks < 1 or args.reads < 8:
        parser.error("--blocks must be positive and --reads at least 8")
    with RedisServer() as single, RedisClusterServer() as cluster:
        stores: dict[str, Callable[[], AsyncOnlineStore]] = {
            "single": lambda: AsyncRedisStore(_config(single.url)),
            "cluster": lambda: AsyncRedisClusterStore(_config(cluster.url)),
        }
        for block in range(args.blocks):
            arms = list(stores) if block % 2 == 0 else list(reversed(stores))
            for arm in arms:
                for concurrent in (1, 8):
                    cpu_us, wall_us = asyncio.run(_measure(stores[arm], concurrent, args.reads))
                    print(
                        f"block {block + 1} {arm:7} concurrent {concurrent}: client CPU "
                        f"{cpu_us:.0f} us/read, wall {wall_us:.0f} us/read"
                    )


def _config(url: str) -> RedisStoreConfig:
    return RedisStoreConfig(url=url, key_prefix=f"bench-{uuid.uuid4().hex[:12]}")


async def _measure(
    make: Callable[[], AsyncOnlineStore], concurrent: int, reads: int
) -> tuple[float, float]:
    store = make()
    try:
        await store.put_many([(key, {"x": fv(1.0), "y": fv("a")}) for key in KEYS])
        for _ in range(200):
            await store.get_many(KEYS)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(reads // concurrent):
            await asyncio.gather(*(store.get_many(KEYS) for _ in range(concurrent)))
        done = reads // concurrent * concurrent
        return (
            (time.process_time() - cpu) / done * 1e6,
            (time.perf_counter() - wall) / done * 1e6,
        )
    finally:
        await store.close()


if __name__ == "__main__":
    main()
