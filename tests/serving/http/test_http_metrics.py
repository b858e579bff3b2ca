"""Every HTTP answer is counted by route and code and timed: the inputs of the
availability and latency objectives (arrive_http_requests_total, arrive_http_request_seconds)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY
from starlette.types import Message, Receive, Scope, Send

from arrive.serving.http.measured import OTHER, Measured
from arrive.serving.settings import ServeSettings

from .conftest import Serve


def _count(route: str, code: str) -> float:
    value = REGISTRY.get_sample_value("arrive_http_requests_total", {"route": route, "code": code})
    return value or 0.0


def _timed(route: str) -> float:
    return REGISTRY.get_sample_value("arrive_http_request_seconds_count", {"route": route}) or 0.0


def test_a_200_a_400_and_a_500_are_counted_by_route_and_code(
    serve: Serve, serve_settings: ServeSettings, orders: list[dict[str, Any]]
) -> None:
    before = {code: _count("/v1/eta", code) for code in ("200", "400", "500")} | {
        "timed": _timed("/v1/eta"),
        "404": _count(OTHER, "404"),
        "ready": _count("/readyz", "200"),
    }
    with serve(serve_settings) as (client, predictor):
        assert client.post("/v1/eta", json=orders[0]).status_code == 200
        assert client.post("/v1/eta", content=b"{not json").status_code == 400

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("injected")

        predictor.predict = broken  # type: ignore[method-assign]
        assert client.post("/v1/eta", json=orders[0]).status_code == 500
        assert client.get("/no/such/path/12345").status_code == 404
        assert client.get("/readyz").status_code == 200
    assert _count("/v1/eta", "200") - before["200"] == 1
    assert _count("/v1/eta", "400") - before["400"] == 1
    assert _count("/v1/eta", "500") - before["500"] == 1
    assert _timed("/v1/eta") - before["timed"] == 3
    assert _count(OTHER, "404") - before["404"] == 1  # the path itself never becomes a label
    assert _count("/readyz", "200") - before["ready"] >= 1


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _scope(path: str) -> Scope:
    return {"type": "http", "method": "GET", "path": path, "headers": []}


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


def test_the_latency_is_the_whole_request_on_the_injected_timer() -> None:
    clock = _Clock()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        clock.now += 0.02  # the app takes 20 ms by the fake clock
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def sent(message: Message) -> None:
        pass

    route = "/test/measured-latency"
    app = Measured(slow, [route], timer=clock)
    below = REGISTRY.get_sample_value(
        "arrive_http_request_seconds_bucket", {"route": route, "le": "0.015"}
    )
    asyncio.run(app(_scope(route), _receive, sent))
    assert _count(route, "204") == 1
    assert (below or 0.0) == 0.0
    assert REGISTRY.get_sample_value(
        "arrive_http_request_seconds_bucket", {"route": route, "le": "0.02"}
    ) == pytest.approx(1.0)
    assert REGISTRY.get_sample_value(
        "arrive_http_request_seconds_sum", {"route": route}
    ) == pytest.approx(0.02)


def test_an_app_that_raises_before_answering_counts_as_a_500_and_no_answer_is_not_counted() -> None:
    route = "/test/measured-raise"

    async def raising(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("injected")

    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return  # a client gone mid-request gets no answer

    async def sent(message: Message) -> None:
        pass

    with pytest.raises(RuntimeError):
        asyncio.run(Measured(raising, [route])(_scope(route), _receive, sent))
    asyncio.run(Measured(silent, [route])(_scope(route), _receive, sent))
    assert _count(route, "500") == 1
    assert _timed(route) == 1
