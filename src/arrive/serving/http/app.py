"""The ETA service as a Starlette app: :func:`create_app` wires settings, predictor and routes.

Given a started predictor, the app uses it as is (the caller owns its lifecycle);
given none, the app's lifespan builds one with
:func:`arrive.serving.wiring.build_predictor`, starts it, and closes it at
shutdown.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, Protocol

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arrive.clock import Clock, SystemClock
from arrive.errors import UserError
from arrive.schema.eta import Predictor
from arrive.serving.http.admin import admin_routes
from arrive.serving.http.errors import (
    JSON,
    HttpError,
    on_http_error,
    on_starlette_error,
    on_unexpected,
)
from arrive.serving.http.measured import Measured
from arrive.serving.http.openapi import docs_page, openapi_document
from arrive.serving.http.routes import hot_endpoints, public_routes
from arrive.serving.http.service import Service
from arrive.serving.settings import ServeSettings

logger = logging.getLogger(__name__)
_FAILED: Final = frozenset({"lifespan.startup.failed", "lifespan.shutdown.failed"})
GC_THRESHOLD: Final = 50_000  # allocations between young collections (CPython's default: 700)


def create_app(
    settings: ServeSettings,
    predictor: Predictor | None = None,
    *,
    clock: Clock | None = None,
    build: Callable[[ServeSettings], ManagedPredictor] | None = None,
) -> Starlette:
    """The ETA service's ASGI app.

    Args:
        settings: validated settings (see :func:`arrive.serving.settings.load_settings`).
        predictor: a started predictor to serve with; None builds one in the lifespan.
        clock: the clock giving the creation time of orders that carry none.
        build: what the lifespan builds the predictor with (default
            :func:`arrive.serving.wiring.build_predictor`); unused with ``predictor``.
    """
    service = Service(settings, clock or SystemClock(), predictor)
    hot = hot_endpoints(service)
    routes: list[BaseRoute] = [
        *public_routes(service, hot),
        *admin_routes(service),
        *_doc_routes(settings),
    ]
    return EtaApp(
        hot,
        routes=routes,
        exception_handlers={
            HttpError: on_http_error,
            HTTPException: on_starlette_error,
            Exception: on_unexpected,
        },
        lifespan=None if predictor is not None else _lifespan(service, build),
    )


class EtaApp(Starlette):
    """Starlette, except that ``POST`` to a path of ``hot`` goes straight to its endpoint.

    The ETA endpoints answer their own errors, so they need neither the middleware
    (error handling) nor the router; skipping both takes a measurable share of each
    request's CPU (docs/benchmarks.md). Every other request, and any request that
    does not match exactly (a trailing slash, another method), takes Starlette's way.
    Every HTTP request, either way, is counted and timed: the ETA endpoints record
    their own answers, :class:`Measured` the others'.
    """

    def __init__(self, hot: Mapping[str, ASGIApp], **options: Any) -> None:
        super().__init__(**options)
        self.router.redirect_slashes = False  # a redirected POST may come back as a GET
        self.hot = hot
        paths = [route.path for route in self.routes if isinstance(route, Route)]
        self.measured = Measured(self._starlette, paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "POST":
                endpoint = self.hot.get(scope["path"])
                if endpoint is not None:
                    await endpoint(scope, receive, send)
                    return
            await self.measured(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            send = _one_line_failures(send)
        await super().__call__(scope, receive, send)

    async def _starlette(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def _one_line_failures(send: Send) -> Send:
    """``send``, except that a lifespan failure caused by the user (a :class:`UserError`,
    such as a setting refused) carries its one-line message instead of Starlette's
    traceback, which uvicorn would print from every worker."""

    async def sending(message: Message) -> None:
        if message["type"] in _FAILED:
            failure = sys.exc_info()[1]  # Starlette sends this from its ``except`` block
            if isinstance(failure, UserError):
                message = {**message, "message": f"cannot start: {failure}"}
        await send(message)

    return sending


def _doc_routes(settings: ServeSettings) -> list[BaseRoute]:
    document = msgspec.json.encode(openapi_document(settings))
    page = docs_page()

    async def openapi(request: Request) -> Response:
        return Response(document, media_type=JSON)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]


class ManagedPredictor(Predictor, Protocol):
    """A predictor with a lifecycle: started before serving, closed after."""

    async def start(self) -> None:
        """Load what the predictor needs and start its background tasks."""
        ...

    async def aclose(self) -> None:
        """Stop the background tasks and release resources."""
        ...


def _default_build(settings: ServeSettings) -> ManagedPredictor:
    from arrive.serving.wiring import build_predictor

    return build_predictor(settings)


def _settle_heap() -> None:
    """Keep the garbage collector off the long-lived objects loaded at start (the model,
    the compiled trees, the registry, the app): a full collection walking them stalls
    every request in flight for tens of milliseconds. They move to the permanent
    generation; only objects made while serving are collected, and less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


def _lifespan(
    service: Service, build: Callable[[ServeSettings], ManagedPredictor] | None
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        predictor = (build or _default_build)(service.settings)
        await predictor.start()
        service.predictor = predictor
        _settle_heap()
        logger.info("ETA service ready to answer (pid %d)", os.getpid())
        try:
            yield
        finally:
            service.predictor = None
            await predictor.aclose()

    return lifespan
