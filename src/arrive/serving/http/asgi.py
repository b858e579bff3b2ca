"""Raw ASGI for the busiest routes: body reading under a cap, JSON answers.

The ETA routes run as plain ASGI endpoints (:class:`JsonEndpoint`) reached before
Starlette's middleware and router (see :mod:`arrive.serving.http.app`); they answer
their own errors exactly as the app's exception handlers would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from arrive.serving.http.errors import HttpError, error_parts, unexpected_message
from arrive.serving.http.measured import record
from arrive.serving.http.request_id import header

Handler = Callable[[Scope, Receive], Awaitable[tuple[bytes, str]]]
"""Answers a request with its JSON body and request id, or raises :class:`HttpError`."""
_JSON: Final = (b"content-type", b"application/json")
_JSON_TYPE: Final = re.compile(
    r'application/(?:[\w.+-]+\+)?json(?:\s*;\s*charset\s*=\s*"?utf-?8"?)?', re.IGNORECASE
)


async def read_json(scope: Scope, receive: Receive, max_bytes: int) -> bytes:
    """The whole body of a request that sends JSON (see :func:`check_json` and
    :func:`read_body`)."""
    check_json(scope)
    return await read_body(scope, receive, max_bytes)


def check_json(scope: Scope) -> None:
    """Refuse with 415 a body declared as anything but UTF-8 JSON (``application/json``
    or ``application/*+json``, charset UTF-8 if one is given). A request without a
    ``Content-Type`` is read as JSON: clients that post raw bytes (``http.client``,
    ``httpx`` with ``content=``) send none, and the body says what it is.

    Raises:
        HttpError: 415 naming the ``Content-Type`` header.
    """
    declared = header(scope, b"content-type")
    if declared is None or not declared.strip():
        return
    if _JSON_TYPE.fullmatch(declared.strip()) is None:
        raise HttpError(
            415,
            f"Content-Type: the body must be sent as application/json, not {declared.strip()!r}"
            " (curl: -H 'content-type: application/json')",
            field="Content-Type",
        )


async def read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes:
    """The whole body, refusing with 413 once it exceeds ``max_bytes``.

    A ``Content-Length`` above the cap is refused before reading; the bytes are
    counted while streaming too (chunked bodies, or a lying header).

    Raises:
        HttpError: 413 (too large) or 400 (a malformed ``Content-Length``).
        ClientDisconnect: the client went away before the body was whole.
    """
    declared = header(scope, b"content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HttpError(
                400, "the Content-Length header is not a number", field="Content-Length"
            )
        if int(declared) > max_bytes:
            raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(max_bytes: int) -> HttpError:
    return HttpError(413, f"the body is larger than {max_bytes} bytes", field="body")


class JsonEndpoint:
    """An ASGI endpoint around ``handler``: 200 with its body and ``X-Request-ID``, or the
    error answer of an :class:`HttpError`, or a 500 without details for anything else
    (logged with its traceback). A client gone mid-request gets no answer.

    Each answer is counted and timed as ``route`` (:func:`~arrive.serving.http.measured.record`),
    on ``timer`` (seconds of a monotonic clock).
    """

    def __init__(
        self, handler: Handler, route: str, timer: Callable[[], float] = time.perf_counter
    ) -> None:
        self.handler = handler
        self.route = route
        self.timer = timer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = self.timer()
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
        record(self.route, status, self.timer() - start)


async def send_json(send: Send, status: int, body: bytes, headers: Mapping[str, str]) -> None:
    """Answer ``status`` with the JSON ``body`` and ``headers``."""
    raw: list[tuple[bytes, bytes]] = [_JSON, (b"content-length", b"%d" % len(body))]
    raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": raw}
    await send(start)
    await send({"type": "http.response.body", "body": body})
