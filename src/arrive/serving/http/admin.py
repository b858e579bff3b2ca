"""Admin routes: reload the model, flip the kill switch. Bearer token required.

Every admin call needs ``Authorization: Bearer <admin_token>``: a missing, malformed
or wrong token is 401 (compared in constant time). With no ``admin_token``
configured the admin routes are disabled and answer 403.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from arrive.errors import ArriveError
from arrive.serving.http.asgi import read_json
from arrive.serving.http.errors import JSON, HttpError, from_arrive_error
from arrive.serving.http.request_id import request_id_of
from arrive.serving.http.routes import caller_request_id, decode
from arrive.serving.http.schema import KillSwitchRequest, KillSwitchState
from arrive.serving.http.service import Service

logger = logging.getLogger(__name__)

_kill_decoder: Final = msgspec.json.Decoder(KillSwitchRequest)
_CHALLENGE: Final = {"www-authenticate": 'Bearer realm="arrive-admin"'}

Endpoint = Callable[[Request], Awaitable[Response]]


def admin_routes(service: Service) -> list[BaseRoute]:
    """The admin routes bound to ``service``."""
    return [
        Route("/admin/reload", _reload(service), methods=["POST"]),
        Route("/admin/kill-switch", _kill_switch(service), methods=["POST"]),
    ]


def authorize(request: Request, token: str | None) -> None:
    """Pass when the request carries ``token`` as its bearer token.

    Raises:
        HttpError: 403 when no token is configured, 401 when the header is missing,
            malformed or holds another token.
    """
    if token is None:
        raise HttpError(403, "the admin endpoints are disabled (no admin_token configured)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise HttpError(401, "missing bearer token", field="Authorization", headers=_CHALLENGE)
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HttpError(401, "invalid bearer token", field="Authorization", headers=_CHALLENGE)


def _reload(service: Service) -> Endpoint:
    async def reload(request: Request) -> Response:
        caller_request_id(request.scope)
        authorize(request, service.settings.admin_token)
        try:
            answer = await service.require().reload()
        except ArriveError as exc:
            logger.warning("admin reload refused: %s", exc)
            raise from_arrive_error(exc) from None
        logger.info("admin reload: serving %s", answer.model_version or "the heuristic")
        return _json(request, answer)

    return reload


def _kill_switch(service: Service) -> Endpoint:
    limit = service.settings.max_body_bytes

    async def kill_switch(request: Request) -> Response:
        caller_request_id(request.scope)
        authorize(request, service.settings.admin_token)
        payload = decode(_kill_decoder, await read_json(request.scope, request.receive, limit))
        service.require().set_kill_switch(payload.on)
        logger.warning("admin kill switch %s", "ON" if payload.on else "off")
        return _json(request, KillSwitchState(kill_switch=payload.on))

    return kill_switch


def _json(request: Request, body: msgspec.Struct) -> Response:
    rid = request_id_of(request.scope)
    return Response(msgspec.json.encode(body), media_type=JSON, headers={"x-request-id": rid})
