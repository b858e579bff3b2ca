"""The store on a real Redis Cluster while its slots move: every read during a
migration (ASK redirects) and after it (MOVED) gives the stored rows, never an error.

The store contract runs on the cluster too (``tests/store/conftest.py``); the node-down
fallback is in ``tests/serving/test_cluster_faults.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import pytest
from redis.crc import key_slot

from arrive.store.base import EntityKey, FeatureRow
from arrive.store.keys import KeyLayout
from arrive.store.redis import RedisStoreConfig
from arrive.store.redis_cluster import AsyncRedisClusterStore
from arrive.testing.servers.redis_cluster import RedisClusterServer
from arrive.testing.store_contract import fv

pytestmark = [pytest.mark.redis, pytest.mark.faults]


def _store(cluster: RedisClusterServer) -> tuple[AsyncRedisClusterStore, KeyLayout]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    config = RedisStoreConfig(url=cluster.url, key_prefix=prefix)
    return AsyncRedisClusterStore(config), KeyLayout(prefix)


def _rows(keys: list[EntityKey], version: float) -> dict[EntityKey, FeatureRow]:
    return {key: {"v": fv(version + i, version)} for i, key in enumerate(keys)}


def _same_slot(layout: KeyLayout, n: int) -> tuple[int, list[EntityKey]]:
    """``n`` couriers whose keys hash to one slot (found by trying ids)."""
    first: EntityKey = ("courier", "0")
    slot = key_slot(layout.feature_key(first).encode())
    keys = [first]
    for i in itertools.count(1):
        key = ("courier", str(i))
        if key_slot(layout.feature_key(key).encode()) == slot:
            keys.append(key)
            if len(keys) == n:
                return slot, keys
    raise AssertionError("unreachable")


def test_reads_and_writes_follow_ask_then_moved_while_a_slot_migrates(
    redis_cluster: RedisClusterServer,
) -> None:
    store, layout = _store(redis_cluster)
    slot, moving = _same_slot(layout, 4)
    others = [("store", str(i)) for i in range(30)]
    keys = [*moving, *others]
    source = redis_cluster.owner(slot)
    target = (source + 1) % len(redis_cluster.nodes)

    async def run() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        first = _rows(keys, 1.0)
        await store.put_many(list(first.items()))
        seen["before"] = await store.get_many(keys) == [first[k] for k in keys]
        redis_cluster.begin_migration(slot, target)
        half = [layout.feature_key(k) for k in moving[:2]]
        redis_cluster.migrate_keys(slot, target, half)
        with redis_cluster.admin(source) as src, redis_cluster.admin(target) as dst:
            left = src.execute_command("CLUSTER GETKEYSINSLOT", slot, 10_000)
            there = dst.pipeline(transaction=False).execute_command("ASKING").exists(*half)
            seen["moved mid-way"] = (sum(str(k) in half for k in left), there.execute()[1])
        seen["half"] = await store.get_many(keys) == [first[k] for k in keys]  # ASK
        second = _rows(moving, 2.0)  # merges into keys on either node
        await store.put_many(list(second.items()))
        now = first | second
        seen["written half"] = await store.get_many(keys) == [now[k] for k in keys]
        redis_cluster.finish_migration(slot, target)
        seen["after"] = await store.get_many(keys) == [now[k] for k in keys]  # MOVED
        await store.close()
        return seen

    seen = asyncio.run(run())
    assert seen == {
        "before": True,
        "moved mid-way": (0, 2),
        "half": True,
        "written half": True,
        "after": True,
    }
    assert redis_cluster.owner(slot) == target


def test_reads_during_a_redis_cli_reshard_are_all_right(
    redis_cluster: RedisClusterServer,
) -> None:
    store, layout = _store(redis_cluster)
    keys: list[EntityKey] = [("courier", f"c{i}") for i in range(2000)]
    rows = _rows(keys, 1.0)
    source, target = 0, 2
    moving = redis_cluster.slots_of(source)
    in_moving = {key_slot(layout.feature_key(k).encode()) for k in keys} & moving

    async def run() -> tuple[int, int]:
        await store.put_many(list(rows.items()))
        reshard = asyncio.ensure_future(
            asyncio.to_thread(redis_cluster.reshard, source, target, 200)
        )
        reads = wrong = 0
        batches = itertools.cycle(range(0, len(keys), 50))
        while not reshard.done():
            at = next(batches)
            batch = keys[at : at + 50]
            got = await store.get_many(batch)
            reads += 1
            wrong += got != [rows[k] for k in batch]
        await reshard
        after = await store.get_many(keys)
        wrong += after != [rows[k] for k in keys]
        await store.close()
        return reads, wrong

    reads, wrong = asyncio.run(run())
    assert wrong == 0
    assert reads > 0
    assert in_moving & redis_cluster.slots_of(target)  # slots read did move


def test_cluster_node_ports_leave_room_for_the_cluster_bus() -> None:
    """A node refuses a port above 55,535 (its bus listens 10,000 higher): the ports a
    cluster picks stay below that, and a port whose bus port is taken is passed over."""
    import random
    import socket

    from arrive.testing.servers.ports import CLUSTER_BUS_OFFSET, free_cluster_port

    ports = [free_cluster_port() for _ in range(300)]
    assert max(ports) + CLUSTER_BUS_OFFSET <= 65_535
    first = free_cluster_port(rng=random.Random(7))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first + CLUSTER_BUS_OFFSET))
        assert free_cluster_port(rng=random.Random(7)) != first
