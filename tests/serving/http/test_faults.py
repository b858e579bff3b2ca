"""Faults through HTTP with features in a real redis-server: Redis stopped mid-run and
restarted, and overload. Every answer is a 200; the reason code says what happened."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx2
import msgspec
import pytest

from arrive.serving.http import create_app
from arrive.serving.settings import ServeSettings
from arrive.serving.wiring import build_predictor
from arrive.testing.servers.eta_service import fill_redis, wait_for
from arrive.testing.servers.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.faults]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def _redis_settings(serve_settings: ServeSettings, url: str, **changes: Any) -> ServeSettings:
    changes = {"store_url": url, "replay_dir": None, "deadline_ms": 250.0, **changes}
    return msgspec.structs.replace(serve_settings, **changes)


def test_redis_stopped_mid_run_answers_store_unavailable_then_recovers(
    serve: Any,
    serve_settings: ServeSettings,
    trained: Any,
    redis: RedisServer,
    orders: list[dict[str, Any]],
) -> None:
    clock = fill_redis(redis.url, trained.data_dir)
    settings = _redis_settings(serve_settings, redis.url)
    with serve(settings, clock=clock) as (client, _):
        wait_for(lambda: client.get("/readyz").status_code == 200, what="readiness")
        before = [client.post("/v1/eta", json=o) for o in orders[:5]]

        redis.stop()
        during = [client.post("/v1/eta", json=o) for o in orders[:20]]
        batch = client.post("/v1/eta/batch", json={"orders": orders[:5]})
        wait_for(lambda: client.get("/healthz").json()["store"] == "down", what="health")
        ready = client.get("/readyz")
        health = client.get("/healthz").json()

        port = redis.port
        redis.start(port)  # the same port, empty: the features are written again
        fill_redis(redis.url, trained.data_dir)
        wait_for(lambda: client.get("/healthz").json()["store"] == "up", what="recovery")
        after = [client.post("/v1/eta", json=o) for o in orders[:5]]

    assert [r.json()["fallback"] for r in before] == [None] * 5
    assert [r.status_code for r in during] == [200] * 20
    assert {r.json()["fallback"] for r in during} == {"store_unavailable"}
    assert {r.json()["variant"] for r in during} == {"heuristic"}
    assert all(0 < r.json()["p50_s"] <= r.json()["p90_s"] for r in during)
    assert batch.status_code == 200
    assert {a["fallback"] for a in batch.json()["answers"]} == {"store_unavailable"}
    assert ready.status_code == 200  # the heuristic answers: the replica stays in rotation
    assert health["status"] == "degraded"
    assert "feature store unreachable; the heuristic answers" in health["problems"]
    assert [r.json()["fallback"] for r in after] == [None] * 5


def test_overload_answers_with_the_fallback_and_never_times_out(
    serve_settings: ServeSettings, trained: Any, redis: RedisServer, orders: list[dict[str, Any]]
) -> None:
    clock = fill_redis(redis.url, trained.data_dir)
    settings = _redis_settings(
        serve_settings, redis.url, max_in_flight=2, deadline_ms=2000.0, admission_wait_ms=0.0
    )

    async def burst() -> list[httpx2.Response]:
        predictor = build_predictor(settings, clock=clock, registry=trained.registry())
        await predictor.start()
        transport = httpx2.ASGITransport(app=create_app(settings, predictor))
        try:
            async with httpx2.AsyncClient(transport=transport, base_url="http://eta") as client:
                requests = [client.post("/v1/eta", json=o) for o in orders * 4]
                return await asyncio.gather(*requests)
        finally:  # bounded: a close that hangs fails the test instead of stalling it
            await asyncio.wait_for(predictor.aclose(), timeout=30)

    responses = asyncio.run(burst())
    reasons = [r.json()["fallback"] for r in responses]
    assert [r.status_code for r in responses] == [200] * len(orders) * 4
    assert reasons.count("overload") >= len(responses) // 2
    assert reasons.count(None) >= 2
    assert set(reasons) <= {None, "overload"}
