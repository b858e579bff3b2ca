"""The public routes: ETAs (one order, a batch), liveness, readiness and metrics.

Thin on purpose: decode and validate with msgspec, call the predictor, encode. The
ETA routes are raw ASGI endpoints (:class:`~arrive.serving.http.asgi.JsonEndpoint`)
that the app calls before its middleware and router.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeVar

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope

from arrive.monitoring import metrics as service_metrics
from arrive.schema.eta import EtaRequest, Health, to_order
from arrive.serving.http.asgi import Handler, JsonEndpoint, read_json
from arrive.serving.http.errors import JSON, HttpError, invalid, malformed, not_utf8
from arrive.serving.http.request_id import header_request_id, new_request_id, remember
from arrive.serving.http.schema import BatchAnswer, BatchRequest, Readiness
from arrive.serving.http.service import Service

T = TypeVar("T")
Endpoint = Callable[[Request], Awaitable[Response]]

_eta_decoder: Final = msgspec.json.Decoder(EtaRequest)
_batch_decoder: Final = msgspec.json.Decoder(BatchRequest)
_encoder: Final = msgspec.json.Encoder()
_STARTING: Final = Health(status="degraded", ready=False, problems=["the service is starting"])
_READY: Final = msgspec.json.encode(Readiness(ready=True))


def public_routes(service: Service, hot: Mapping[str, JsonEndpoint]) -> list[BaseRoute]:
    """The routes of the ETA API bound to ``service``, with the ETA endpoints ``hot``
    (from :func:`hot_endpoints`)."""
    return [
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in hot.items()),
        Route("/healthz", _healthz(service), methods=["GET"]),
        Route("/readyz", _readyz(service), methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
    ]


def hot_endpoints(service: Service) -> dict[str, JsonEndpoint]:
    """The ETA endpoints by path: raw ASGI, so the app can reach them before its router."""
    return {
        "/v1/eta": JsonEndpoint(_eta(service), "/v1/eta"),
        "/v1/eta/batch": JsonEndpoint(_batch(service), "/v1/eta/batch"),
    }


def decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """``body`` decoded: 400 when it is not JSON (naming the field of a string that is
    not UTF-8), 422 naming the field when it does not fit."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise malformed(exc) from None
    except UnicodeDecodeError as exc:
        raise not_utf8(body, exc) from None


def caller_request_id(scope: Scope) -> str | None:
    """The ``X-Request-ID`` header (422 when malformed), recorded for error answers."""
    try:
        rid = header_request_id(scope)
    except ValueError:
        raise HttpError(
            422, "X-Request-ID: must be 1-128 of A-Z a-z 0-9 . _ : -", field="X-Request-ID"
        ) from None
    if rid is not None:
        remember(scope, rid)
    return rid


def _eta(service: Service) -> Handler:
    limit = service.settings.max_body_bytes

    async def eta(scope: Scope, receive: Receive) -> tuple[bytes, str]:
        header_rid = caller_request_id(scope)
        payload = decode(_eta_decoder, await read_json(scope, receive, limit))
        rid = remember(scope, payload.request_id or header_rid or new_request_id())
        predictor = service.require()
        order = to_order(payload, rid, service.clock.now())
        answers = await predictor.predict([order], [rid])
        return _encoder.encode(answers[0]), rid

    return eta


def _batch(service: Service) -> Handler:
    limit = service.settings.max_body_bytes
    max_batch = service.settings.max_batch

    async def batch(scope: Scope, receive: Receive) -> tuple[bytes, str]:
        header_rid = caller_request_id(scope)
        payload = decode(_batch_decoder, await read_json(scope, receive, limit))
        rid = remember(scope, header_rid or new_request_id())
        if len(payload.orders) > max_batch:
            raise HttpError(
                422,
                f"orders: at most {max_batch} orders per batch, got {len(payload.orders)}",
                field="orders",
            )
        predictor = service.require()
        now = service.clock.now()
        rids = [o.request_id or f"{rid}-{i}" for i, o in enumerate(payload.orders)]
        orders = [to_order(o, r, now) for o, r in zip(payload.orders, rids, strict=True)]
        answers = await predictor.predict(orders, rids)
        return _encoder.encode(BatchAnswer(answers=answers)), rid

    return batch


def _healthz(service: Service) -> Endpoint:
    async def healthz(request: Request) -> Response:
        predictor = service.predictor
        health = _STARTING if predictor is None else predictor.health()
        return Response(_encoder.encode(health), media_type=JSON)

    return healthz


def _readyz(service: Service) -> Endpoint:
    async def readyz(request: Request) -> Response:
        if service.predictor is None:
            ready, reason = False, "the service is starting"
        else:
            ready, reason = service.predictor.ready()
        if ready and not reason:
            return Response(_READY, media_type=JSON)
        if ready:  # serving, but not the alias's version: say so
            return Response(_encoder.encode(Readiness(ready=True, reason=reason)), media_type=JSON)
        body = _encoder.encode(Readiness(ready=False, reason=reason))
        return Response(body, status_code=503, media_type=JSON)

    return readyz


async def _metrics(request: Request) -> Response:
    text, content_type = await run_in_threadpool(service_metrics.render)
    return Response(text, headers={"content-type": content_type})
