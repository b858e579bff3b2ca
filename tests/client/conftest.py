"""A scripted ETA API on a local uvicorn server, for the faults a real service does not
produce on demand: 5xx, garbage, slowness. Each request takes the next scripted answer
(then answers 200 with a well-formed ETA); what was asked is recorded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arrive.schema.api import ErrorBody
from arrive.schema.eta import EtaAnswer
from arrive.testing.servers.eta_service import wait_for
from arrive.testing.servers.ports import free_port


@dataclass
class Scripted:
    """``(status, body bytes, delay_s)`` answers to hand out, and what was asked."""

    url: str = ""
    max_batch: int = 3
    script: list[tuple[int, bytes, float]] = field(default_factory=list)
    asked: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    release: asyncio.Event | None = None
    hold_s: float = 0.0  # every ETA request waits this long before its answer
    open_now: int = 0
    most_open: int = 0  # the most ETA requests in the server at once

    def then(self, status: int, body: bytes | str = b"", delay_s: float = 0.0) -> Scripted:
        raw = body.encode() if isinstance(body, str) else body
        self.script.append((status, raw, delay_s))
        return self

    def error(self, status: int, message: str, field_name: str | None = None) -> Scripted:
        body = ErrorBody(error="x", message=message, field=field_name, request_id="rid-srv")
        return self.then(status, msgspec.json.encode(body))


def answer(order: dict[str, Any], rid: str) -> EtaAnswer:
    return EtaAnswer(
        request_id=order.get("request_id") or rid,
        order_id=order["order_id"],
        p50_s=1200.0,
        p90_s=1800.0,
        promised_at=datetime(2026, 1, 1, tzinfo=UTC),
        model_version="7",
        variant="production",
        fallback=None,
        stale_features=[],
    )


def _app(state: Scripted) -> Starlette:
    async def eta(request: Request) -> Response:
        state.open_now += 1
        state.most_open = max(state.most_open, state.open_now)
        try:
            if state.hold_s:
                await asyncio.sleep(state.hold_s)
            return await _eta(request)
        finally:
            state.open_now -= 1

    async def _eta(request: Request) -> Response:
        body = await request.json()
        rid = request.headers.get("x-request-id", "")
        state.asked.append((request.url.path, rid, body))
        if state.script:
            status, raw, delay = state.script.pop(0)
            if delay:
                await asyncio.sleep(delay)
            return Response(raw, status_code=status, media_type="application/json")
        if request.url.path.endswith("/batch"):
            answers = [answer(o, f"{rid}-{i}") for i, o in enumerate(body["orders"])]
            return Response(
                msgspec.json.encode({"answers": answers}), media_type="application/json"
            )
        return Response(msgspec.json.encode(answer(body, rid)), media_type="application/json")

    async def openapi(request: Request) -> Response:
        orders = {"type": "array", "maxItems": state.max_batch}
        schemas = {"BatchRequest": {"properties": {"orders": orders}}}
        return JSONResponse({"info": {"version": "1.0.0"}, "components": {"schemas": schemas}})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "ready": True, "model_version": "7"})

    return Starlette(
        routes=[
            Route("/v1/eta", eta, methods=["POST"]),
            Route("/v1/eta/batch", eta, methods=["POST"]),
            Route("/openapi.json", openapi),
            Route("/healthz", healthz),
        ]
    )


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[Scripted, uvicorn.Server]]:
    state = Scripted()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            _app(state),
            host="127.0.0.1",
            port=port,
            log_level="error",
            lifespan="off",
            timeout_graceful_shutdown=0,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the scripted server")
    state.url = f"http://127.0.0.1:{port}"
    yield state, server
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def scripted(_server: tuple[Scripted, uvicorn.Server]) -> Scripted:
    """The module's scripted server, with an empty script and record."""
    state = _server[0]
    state.script.clear()
    state.asked.clear()
    state.max_batch = 3
    state.hold_s = 0.0
    state.most_open = 0
    return state
