"""Every HTTP answer counted and timed, for the availability and latency objectives.

:func:`record` counts one answer (the metric children cached per route and status, so
it costs two dict lookups beside the metric updates). The ETA endpoints call it
themselves (:class:`~arrive.serving.http.asgi.JsonEndpoint`: they know their status,
so their ``send`` needs no wrapper); :class:`Measured` wraps the rest of the app as
plain ASGI. docs/benchmarks.md has the measured cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arrive.monitoring import metrics

OTHER: Final = "other"
"""The route label of a path that no route serves (a 404): paths stay out of labels."""


class Measured:
    """``app``, counting each answer in ``arrive_http_requests_total{route,code}`` and
    timing it in ``arrive_http_request_seconds{route}``.

    A request whose app raises before answering counts as the 500 the server sends;
    one that ends without an answer (the client went away) is not counted.

    Args:
        app: the ASGI app to measure.
        routes: the paths served (route templates); any other path is ``other``.
        timer: seconds of a monotonic clock (tests pass a fake).
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: Iterable[str],
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.routes = frozenset(routes)
        self.timer = timer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = self.timer()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = status or 500
            raise
        finally:
            if status:
                path = scope["path"]
                record(path if path in self.routes else OTHER, status, self.timer() - start)


def record(route: str, status: int, seconds: float) -> None:
    """Count one answer ``status`` of ``route`` that took ``seconds``."""
    counter = _COUNTS.get((route, status))
    if counter is None:
        counter = _COUNTS[route, status] = metrics.HTTP_REQUESTS.labels(route, str(status))
    counter.inc()
    timer = _TIMES.get(route)
    if timer is None:
        timer = _TIMES[route] = metrics.HTTP_REQUEST_SECONDS.labels(route)
    timer.observe(seconds)


_COUNTS: dict[tuple[str, int], Counter] = {}
_TIMES: dict[str, Histogram] = {}
