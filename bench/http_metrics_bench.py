"""What counting and timing every request (arrive_http_requests_total,
arrive_http_request_seconds) costs the ETA service, in one process.

The real app (:func:`arrive.serving.http.create_app`) answers ``POST /v1/eta`` through
ASGI calls, no server and no socket, with a predictor that returns a fixed answer, so
the time left is the app's own (request id, body reading, msgspec decoding and
validation, the answer's encoding) plus what is measured: the app as served (its ETA
endpoints count and time each answer) against a copy whose ETA endpoints run the code
from before the HTTP metrics (:class:`_Unmeasured`). Rounds alternate between the two
so host drift hits both alike; the figure is the median over rounds of the per-request
time.
A real predictor (feature reads, the model) only adds time to both, so the share
measured here is an upper bound of the share in service.

    python bench/http_metrics_bench.py [--requests 20000] [--rounds 15] [--multiprocess]

``--multiprocess`` sets ``PROMETHEUS_MULTIPROC_DIR`` (as ``arrive serve --workers N``
does), where every metric update writes to a memory-mapped file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec


class _Fixed:
    """A predictor answering every order with the same ETA."""

    def __init__(self) -> None:
        from arrive.schema.eta import EtaAnswer

        self.answer = EtaAnswer(
            request_id="r",
            order_id="o",
            p50_s=1500.0,
            p90_s=2100.0,
            promised_at=datetime(2026, 12, 2, 12, 35, tzinfo=UTC),
            model_version="1",
            variant="production",
            fallback=None,
            stale_features=[],
        )

    async def predict(self, orders: Sequence[Any], request_ids: Sequence[str]) -> list[Any]:
        return [self.answer] * len(orders)


def _unmeasured() -> type:
    """JsonEndpoint as it was before the HTTP metrics (no timer, no record)."""
    from starlette.requests import ClientDisconnect

    from arrive.serving.http.asgi import JsonEndpoint, send_json
    from arrive.serving.http.errors import HttpError, error_parts, unexpected_message

    class _Unmeasured(JsonEndpoint):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            try:
                body, rid = await self.handler(scope, receive)
                status, headers = 200, {"x-request-id": rid}
            except ClientDisconnect:
                return
            except HttpError as exc:
                status = exc.status
                body, headers = error_parts(scope, status, exc.message, exc.field, exc.headers)
            except Exception as exc:
                status = 500
                body, headers = error_parts(scope, status, unexpected_message(scope, exc))
            await send_json(send, status, body, headers)

    return _Unmeasured


_BODY = msgspec.json.encode(
    {
        "order_id": "bench-1",
        "created_at": "2026-12-02T12:00:00+00:00",
        "store_id": "s-17",
        "market_id": "m-1",
        "pickup_lat": 52.52,
        "pickup_lon": 13.40,
        "drop_lat": 52.50,
        "drop_lon": 13.42,
        "items": 3,
        "distinct_items": 2,
        "subtotal": 31.5,
    }
)
_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "path": "/v1/eta",
    "raw_path": b"/v1/eta",
    "query_string": b"",
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_BODY))],
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": _BODY, "more_body": False}


async def _round(app: Any, requests: int) -> float:
    """Microseconds per request over ``requests`` sequential requests."""
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.perf_counter()
    for _ in range(requests):
        await app(dict(_SCOPE), _receive, send)
    elapsed = time.perf_counter() - start
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected answers: {sorted(set(statuses))}")
    return elapsed / requests * 1e6


async def _compare(requests: int, rounds: int) -> tuple[list[float], list[float]]:
    from arrive.serving.http import create_app
    from arrive.serving.settings import ServeSettings

    measured: Any = create_app(ServeSettings(), predictor=_Fixed())  # type: ignore[arg-type]
    bare: Any = create_app(ServeSettings(), predictor=_Fixed())  # type: ignore[arg-type]
    unmeasured = _unmeasured()
    bare.hot = {path: unmeasured(e.handler, e.route) for path, e in bare.hot.items()}
    await _round(measured, requests // 10)  # warm both paths
    await _round(bare, requests // 10)
    with_metrics, without = [], []
    for i in range(rounds):
        order = [(measured, with_metrics), (bare, without)]
        for target, results in order if i % 2 == 0 else reversed(order):
            results.append(await _round(target, requests))
    return with_metrics, without


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of each variant")
    parser.add_argument("--multiprocess", action="store_true", help="multiprocess metric files")
    args = parser.parse_args(argv)
    if args.multiprocess:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="arrive-bench-")
    with_metrics, without = asyncio.run(_compare(args.requests, args.rounds))
    a, b = statistics.median(with_metrics), statistics.median(without)
    mode = "multiprocess files" if args.multiprocess else "one process"
    print(
        f"POST /v1/eta in-process, fixed predictor, {mode}, {args.rounds} rounds x "
        f"{args.requests} requests (median of rounds)"
    )
    for name, value, runs in (("without", b, without), ("with", a, with_metrics)):
        spread = f"{min(runs):.2f}-{max(runs):.2f}"
        print(f"  {name + ' HTTP metrics:':22} {value:7.2f} us/request  (rounds {spread})")
    print(f"  cost: {a - b:+.2f} us/request ({(a - b) / b * 100:+.1f} % of this app-only path)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
