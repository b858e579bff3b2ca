"""A Redis Cluster node killed mid-run: answers continue as ``store_unavailable`` (the
heuristic), then the model answers again once the node is back and refilled."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from redis.crc import key_slot

from arrive.clock import ManualClock
from arrive.features.online.parts import PIPELINE_KEY
from arrive.schema.eta import EtaAnswer
from arrive.serving.wiring import build_predictor
from arrive.store.keys import KeyLayout
from arrive.store.urls import open_store
from arrive.testing.servers.redis_cluster import RedisClusterServer

pytestmark = [pytest.mark.redis, pytest.mark.faults]


@pytest.mark.redis
def test_a_cluster_node_killed_falls_back_then_recovers(
    redis_cluster: RedisClusterServer,
    trained: Any,
    settings_for: Any,
    late_orders: Any,
    replay_until: Any,
    eventually: Any,
) -> None:
    orders = late_orders(3, every=9)
    at = max(o.event_time for o in orders)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    url = f"{redis_cluster.url}?prefix={prefix}"
    # the node holding the engine's watermark: every request reads it
    victim = redis_cluster.owner(key_slot(KeyLayout(prefix).feature_key(PIPELINE_KEY).encode()))

    def fill() -> None:
        store = open_store(url, "test")
        replay_until(store, at)
        store.close()

    async def run() -> dict[str, list[EtaAnswer]]:
        fill()
        predictor = build_predictor(
            settings_for(store_url=url, deadline_ms=500),
            clock=ManualClock(at),
            registry=trained.registry(),
        )
        async with predictor:
            seen = {"up": await predictor.predict(orders, ["a"] * 3)}
            redis_cluster.kill_node(victim)
            seen["down"] = await predictor.predict(orders, ["b"] * 3)
            seen["still down"] = await predictor.predict(orders, ["c"] * 3)
            assert predictor.health().store == "down"
            await asyncio.to_thread(redis_cluster.restart_node, victim)
            fill()  # the node came back empty (no persistence)
            await eventually(lambda: predictor.store_ok is True)
            seen["back"] = await predictor.predict(orders, ["d"] * 3)
            return seen

    try:
        seen = asyncio.run(run())
    finally:
        if not redis_cluster.nodes[victim].running:
            redis_cluster.restart_node(victim)
    assert all(a.fallback is None and a.model_version == "1" for a in seen["up"])
    for phase in ("down", "still down"):
        assert [a.fallback for a in seen[phase]] == ["store_unavailable"] * 3
        assert all(a.variant == "heuristic" and a.p90_s >= a.p50_s > 0 for a in seen[phase])
    assert [a.p50_s for a in seen["back"]] == [a.p50_s for a in seen["up"]]
    assert all(a.fallback is None for a in seen["back"])
