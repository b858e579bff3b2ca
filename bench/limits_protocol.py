"""The request limits' CPU cost per request, in process: uvicorn's httptools protocol as
the service runs it, with and without the limits, on the same keep-alive connection
traffic (no sockets, no load generator: only the protocol and a trivial app).

Usage: python bench/limits_protocol.py [--requests 20000] [--blocks 15]

Each block sends ``--requests`` requests (a 300-byte ``POST /v1/eta``, whole in one
read, as wrk and most clients send them) through one protocol instance over a
transport that only collects the answer; blocks alternate between the two
protocols. Prints the median microseconds of this process's CPU time per request
of each (CPU time, not wall time: other processes on a shared host do not count)
and their difference.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from typing import Any

import uvicorn
import uvloop
from uvicorn.server import ServerState

from arrive.serving.http.limits import LimitedHttpToolsProtocol, RequestLimits
from arrive.serving.http.protocol import OneWriteHttpToolsProtocol

BODY = b'{"order_id":"o-1","created_at":"2026-12-02T12:00:00Z","store_id":"s-9",' + (
    b'"market_id":"m-1","pickup_lat":12.97,"pickup_lon":77.59,"drop_lat":12.99,'
    b'"drop_lon":77.61,"items":3,"subtotal":24.5,"store_category":"pizza"}'
)
REQUEST = (
    b"POST /v1/eta HTTP/1.1\r\nHost: 127.0.0.1:8000\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n" % len(BODY)
) + BODY
ANSWER = b'{"p50_s":1500.0,"p90_s":2400.0}'


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"31")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


class Transport(asyncio.Transport):
    """Collects what is written; never closes."""

    def __init__(self) -> None:
        super().__init__()
        self.answers = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.answers += bytes(data).count(b"HTTP/1.1 200")

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default

    def pause_reading(self) -> None: ...

    def close(self) -> None: ...

    def resume_reading(self) -> None: ...


async def block(factory: Any, config: uvicorn.Config, requests: int) -> float:
    """CPU seconds per request over ``requests`` requests on one connection."""
    state = ServerState()
    protocol = factory(config=config, server_state=state, app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    started = time.process_time()
    for _ in range(requests):
        protocol.data_received(REQUEST)
        while state.tasks:  # the app's task answers; the loop runs it
            await asyncio.sleep(0)
    await asyncio.sleep(0)  # the joined writes go out at the end of the turn
    elapsed = time.process_time() - started
    protocol.connection_lost(None)
    assert transport.answers == requests, (transport.answers, requests)
    return elapsed / requests


async def run(requests: int, blocks: int) -> dict[str, list[float]]:
    config = uvicorn.Config(app, lifespan="off", access_log=False, log_level="warning")
    config.load()
    factories = {
        "without limits": OneWriteHttpToolsProtocol,
        "with limits": functools.partial(LimitedHttpToolsProtocol, limits=RequestLimits()),
    }
    out: dict[str, list[float]] = {name: [] for name in factories}
    for index in range(blocks):
        names = list(factories) if index % 2 == 0 else list(factories)[::-1]
        for name in names:
            out[name].append(await block(factories[name], config, requests))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per block")
    parser.add_argument("--blocks", type=int, default=15, help="blocks per protocol")
    args = parser.parse_args()
    results = uvloop.run(run(args.requests, args.blocks))
    medians = {name: statistics.median(times) * 1e6 for name, times in results.items()}
    for name, median in medians.items():
        spread = [round(t * 1e6, 1) for t in sorted(results[name])]
        print(f"{name}: median {median:.2f} us/request (blocks, sorted: {spread})")
    extra = medians["with limits"] - medians["without limits"]
    print(f"difference: {extra:+.2f} us/request ({extra / medians['without limits']:+.1%})")


if __name__ == "__main__":
    main()
