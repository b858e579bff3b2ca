"""Limits on slow and huge requests, enforced in the HTTP protocol of each worker.

uvicorn's httptools protocol bounds neither the size nor the number of header
lines, nor how long a client may take to send a request: a 1 MB header, thousands
of header lines, a connection that never sends a byte, headers sent a byte at a
time, or a body shorter than its ``Content-Length`` would each hold a connection
(and its buffers) forever. :class:`LimitedHttpToolsProtocol` adds, per connection:

* **header size and count**: the request line and headers together may take
  ``max_header_bytes`` and ``max_headers`` lines; past either, the answer is 431
  and the connection closes. Bytes are counted as they arrive, so a single huge
  header is refused before it is buffered whole (within one socket read); lines
  are counted once the headers are complete (the byte limit bounds them meanwhile);
* **header and body read timeouts**: once a request's first byte arrived, its
  headers must be complete within ``header_timeout_s``, then its body within
  ``body_timeout_s`` (totals, so trickling bytes does not extend them); past
  either, the answer is 408 (unless one was already sent) and the connection closes;
* **idle timeout**: a connection with no request in progress (a new one, or a
  keep-alive one after its answer) is closed after ``keep_alive_timeout_s``;
* **open connections**: past ``max_connections`` in one worker, a new connection
  is answered 503 and closed at once.

The hot path pays for no timer when a request arrives whole in one read (the
common case): a deadline is armed only when a read ends inside a request.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass
from typing import Any, Final

import httptools
import msgspec

from arrive.monitoring import metrics
from arrive.serving.http.protocol import OneWriteHttpToolsProtocol
from arrive.serving.http.schema import ErrorBody
from arrive.serving.settings import ServeSettings

_IDLE: Final = 0
_HEAD: Final = 1
_BODY: Final = 2


@dataclass(frozen=True)
class RequestLimits:
    """The limits of one worker's connections (from :class:`ServeSettings`)."""

    max_header_bytes: int = 16_384
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 15.0
    keep_alive_timeout_s: float = 20.0
    max_connections: int = 1024

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> RequestLimits:
        """The limits of ``settings``."""
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            keep_alive_timeout_s=settings.keep_alive_timeout_s,
            max_connections=settings.max_connections,
        )


def refusal(status: int, message: str, field: str | None = None) -> bytes:
    """A complete HTTP/1.1 answer with the service's JSON error body, closing the connection."""
    body = msgspec.json.encode(
        ErrorBody(error=_CODES[status], message=message, field=field, request_id="")
    )
    phrase = http.HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


_CODES: Final = {
    408: "request_timeout",
    431: "headers_too_large",
    503: "unavailable",
}


class LimitedHttpToolsProtocol(OneWriteHttpToolsProtocol):
    """:class:`OneWriteHttpToolsProtocol` with :class:`RequestLimits` (uvicorn builds one per
    connection; pass ``functools.partial(LimitedHttpToolsProtocol, limits=...)`` as its
    ``http`` protocol)."""

    def __init__(self, *args: Any, limits: RequestLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.timeout_keep_alive = limits.keep_alive_timeout_s  # type: ignore[assignment]
        self._max_head = limits.max_header_bytes
        self._max_headers = limits.max_headers
        self._phase = _IDLE
        self._head_bytes = 0
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            message = f"more than {self.limits.max_connections} open connections in this worker"
            self._refuse(refusal(503, message), "max_connections")
            return
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase != _BODY:
            self._phase = _HEAD  # a request begins (or goes on) with these bytes
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head and self._head_overflows(data):
                return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if not self._refused:  # else refused already, by a callback
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # the service has no WebSocket routes
        if self._phase and self._deadline is None and not self._refused:
            self._arm()  # the read ended inside a request

    # -- parser callbacks -------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        if self._refused:
            raise _Refused  # refused by an earlier callback of this read
        if len(self.headers) > self._max_headers:
            message = f"more than {self._max_headers} header lines"
            self._refuse(refusal(431, message), "header_count")
            raise _Refused
        self._phase = _BODY
        self._head_bytes = 0
        if self._deadline is not None:
            self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        if self._deadline is not None:
            self._disarm()
        super().on_message_complete()

    # -- deadlines ---------------------------------------------------------------------------

    def _arm(self) -> None:
        """Armed at the end of the read in which the phase began (whose bytes arrived
        together), so the deadline counts from the phase's first byte."""
        limit = self.limits.header_timeout_s if self._phase == _HEAD else self.limits.body_timeout_s
        self._deadline = self.loop.call_later(limit, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        head = self._phase == _HEAD
        what, limit = (
            ("headers", self.limits.header_timeout_s)
            if head
            else ("body", self.limits.body_timeout_s)
        )
        metrics.CONNECTIONS_REFUSED.labels("header_timeout" if head else "body_timeout").inc()
        if head or not (self.cycle is not None and self.cycle.response_started):
            self.transport.write(refusal(408, f"the request {what} took over {limit:g} s"))
        self.transport.close()

    # -- refusals ------------------------------------------------------------------------------

    def _head_overflows(self, data: bytes) -> bool:
        """True (and refused) when the request line and headers outgrow the limit; a read
        that completes the headers within the limit is let through."""
        end = data.find(b"\r\n\r\n")
        if end >= 0 and self._head_bytes - len(data) + end + 4 <= self.limits.max_header_bytes:
            return False
        message = f"the request line and headers exceed {self.limits.max_header_bytes} bytes"
        self._refuse(refusal(431, message), "header_bytes")
        return True

    def _refuse(self, answer: bytes, reason: str) -> None:
        metrics.CONNECTIONS_REFUSED.labels(reason).inc()
        self._refused = True
        self._disarm()
        self._unset_keepalive_if_required()
        self._phase = _IDLE
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()


class _Refused(Exception):
    """Stops the parser after a refusal (raised from a callback, caught in ``data_received``)."""
