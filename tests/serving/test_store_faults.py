"""Redis stopped mid-run: answers continue as ``store_unavailable``, then recover."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from arrive.clock import ManualClock
from arrive.schema.eta import EtaAnswer
from arrive.serving.wiring import build_predictor
from arrive.store.redis import RedisStore, RedisStoreConfig
from arrive.testing.servers.redis_server import RedisServer

pytestmark = pytest.mark.faults


@pytest.mark.redis
def test_redis_stopped_mid_run_falls_back_and_recovers(
    trained: Any,
    settings_for: Any,
    late_orders: Any,
    replay_until: Any,
    eventually: Any,
) -> None:
    orders = late_orders(3, every=9)
    at = max(o.event_time for o in orders)
    server = RedisServer()
    server.start()

    def fill() -> None:
        store = RedisStore(RedisStoreConfig(url=server.url))
        replay_until(store, at)
        store.close()

    async def run() -> dict[str, list[EtaAnswer]]:
        fill()
        predictor = build_predictor(
            settings_for(store_url=server.url, deadline_ms=500),
            clock=ManualClock(at),
            registry=trained.registry(),
        )
        async with predictor:
            seen = {"up": await predictor.predict(orders, ["a"] * 3)}
            port = server.port
            server.stop()
            seen["down"] = await predictor.predict(orders, ["b"] * 3)
            seen["still down"] = await predictor.predict(orders, ["c"] * 3)
            assert predictor.ready() == (True, "")  # the heuristic answers: still ready
            assert predictor.health().store == "down"
            server.start(port)
            fill()
            await eventually(lambda: predictor.store_ok is True)
            seen["back"] = await predictor.predict(orders, ["d"] * 3)
            return seen

    try:
        seen = asyncio.run(run())
    finally:
        server.stop()
    assert all(a.fallback is None and a.model_version == "1" for a in seen["up"])
    for phase in ("down", "still down"):
        assert [a.fallback for a in seen[phase]] == ["store_unavailable"] * 3
        assert all(a.variant == "heuristic" and a.p90_s >= a.p50_s > 0 for a in seen[phase])
    assert [a.p50_s for a in seen["back"]] == [a.p50_s for a in seen["up"]]
    assert all(a.fallback is None for a in seen["back"])
