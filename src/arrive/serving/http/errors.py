"""HTTP errors: the status table, the error body, and the app's exception handlers.

This is the only module that maps errors to HTTP statuses. Every refusal answers
with an :class:`~arrive.serving.http.schema.ErrorBody`; a bug answers 500 with the
request id only (the traceback is logged server-side, never sent).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Final

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from arrive.errors import ArriveError, FeatureStoreUnavailable, RegistryError, StoreError
from arrive.schema.utf8 import invalid_utf8
from arrive.serving.http.request_id import request_id_of
from arrive.serving.http.schema import ErrorBody

logger = logging.getLogger(__name__)

JSON: Final = "application/json"

_AT_PATH = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")
_NAMED = re.compile(r"^(?P<name>[a-z_]+): (?P<reason>.+)$", re.DOTALL)
_CODES: Final = {
    400: "malformed_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "refused",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    503: "unavailable",
}


class HttpError(Exception):
    """A refusal with its HTTP status, message and (for 422) the offending field."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}
        super().__init__(message)


def invalid(exc: msgspec.ValidationError) -> HttpError:
    """The 422 for a body that is JSON but does not fit its type; names the field path."""
    field, reason = _field_and_reason(str(exc))
    return HttpError(422, f"{field}: {reason}" if field else reason, field=field)


def malformed(exc: msgspec.DecodeError) -> HttpError:
    """The 400 for a body that is not JSON."""
    return HttpError(400, f"the body is not valid JSON ({exc})")


def not_utf8(body: bytes, exc: UnicodeDecodeError) -> HttpError:
    """The 400 for a JSON body holding a string that is not UTF-8; names its field."""
    path, reason = invalid_utf8(body, exc)
    field = _tidy(path.removeprefix("$")) or "body"
    return HttpError(400, f"{field}: {reason}", field=field)


def from_arrive_error(exc: ArriveError) -> HttpError:
    """An :class:`~arrive.errors.ArriveError` raised by an admin action, as an HttpError."""
    if isinstance(exc, RegistryError):
        return HttpError(409, f"reload refused: {exc}")  # the message says what serves
    if isinstance(exc, FeatureStoreUnavailable | StoreError):
        return HttpError(503, str(exc))
    return HttpError(500, "internal error")


def error_parts(
    scope: Scope,
    status: int,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The JSON error body and headers, echoing the request id in both."""
    rid = request_id_of(scope)
    body = ErrorBody(
        error=_CODES.get(status, "error"), message=message, field=field, request_id=rid
    )
    return msgspec.json.encode(body), {"x-request-id": rid, **(headers or {})}


def error_response(
    request: Request, status: int, message: str, field: str | None = None, **headers: str
) -> Response:
    """The JSON error answer (see :func:`error_parts`) as a Starlette response."""
    body, all_headers = error_parts(request.scope, status, message, field, headers)
    return Response(body, status_code=status, media_type=JSON, headers=all_headers)


def unexpected_message(scope: Scope, exc: Exception) -> str:
    """Log ``exc``'s traceback with the request id; the message a client may see."""
    rid = request_id_of(scope)
    logger.error(
        "request %s %s failed (request id %s)", scope["method"], scope["path"], rid, exc_info=exc
    )
    return f"internal error (request id {rid})"


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Handler of :class:`HttpError`."""
    if not isinstance(exc, HttpError):  # pragma: no cover - registered for HttpError only
        return await on_unexpected(request, exc)
    return error_response(request, exc.status, exc.message, exc.field, **exc.headers)


async def on_starlette_error(request: Request, exc: Exception) -> Response:
    """Handler of Starlette's own errors (unknown route 404, wrong method 405)."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for it only
        return await on_unexpected(request, exc)
    message = {404: _no_route(request), 405: f"method {request.method} not allowed here"}.get(
        exc.status_code, str(exc.detail)
    )
    return error_response(request, exc.status_code, message, None, **(exc.headers or {}))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """Catch-all: log the traceback with the request id, answer 500 without it."""
    return error_response(request, 500, unexpected_message(request.scope, exc))


def _no_route(request: Request) -> str:
    """404's message; names the route a path with a trailing slash was probably meant
    for (such paths are not redirected: a client would resend a POST as a GET)."""
    path = request.url.path
    bare = path.rstrip("/")
    routes = {getattr(route, "path", None) for route in request.app.router.routes}
    if bare != path and bare in routes:
        return f"no such route: {path} (the route is {bare}, without the trailing slash)"
    return "no such route"


def _field_and_reason(message: str) -> tuple[str | None, str]:
    match = _AT_PATH.match(message)
    reason = match["reason"] if match else message
    path = _tidy(match["path"] if match else None)
    if named := _MISSING.match(reason):
        return _join(path, named["name"]), "required field is missing"
    if named := _UNKNOWN.match(reason):
        return _join(path, named["name"]), "unknown field"
    if named := _NAMED.match(reason):
        return _join(path, named["name"]), named["reason"]
    return path or "body", reason


def _tidy(path: str | None) -> str | None:
    if not path:
        return None
    return path.removeprefix(".")


def _join(path: str | None, name: str) -> str:
    return f"{path}.{name}" if path else name
