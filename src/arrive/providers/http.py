"""The one HTTP client every vendor adapter shares, and the translation of every way a
vendor call can fail into :class:`~arrive.providers.base.ProviderError`.

One :class:`httpx.AsyncClient` (one connection pool) serves every adapter of a process;
each call carries its own timeout, enforced on the whole call (httpx's own timeouts apply
per socket operation, so a body dribbling in could outlast them)::

    client = VendorClient()
    body = await client.get_json("osrm", url, params={...}, timeout_s=0.2)
    await client.close()
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, TypeVar

import httpx

from arrive.clock import Clock, SystemClock
from arrive.providers.base import ProviderError

MAX_CONNECTIONS: Final = 100
MAX_KEEPALIVE: Final = 20
KEEPALIVE_EXPIRY_S: Final = 30.0
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
_READ: Final = httpx.ByteStream(b"")  # the stream of a response once read (see _unbind)
T = TypeVar("T")
_DNS_HINTS: Final = ("name or service not known", "nodename nor servname", "name resolution")


class VendorClient:
    """A pooled async HTTP client whose calls answer decoded JSON or raise ProviderError.

    Args:
        max_connections: open connections over every vendor.
        max_keepalive: idle connections kept for reuse.
        clock: for ``Retry-After`` given as an HTTP date.
        transport: an httpx transport (tests of the pool itself); default: the network.
    """

    def __init__(
        self,
        max_connections: int = MAX_CONNECTIONS,
        max_keepalive: int = MAX_KEEPALIVE,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        )
        self._client = httpx.AsyncClient(
            limits=limits, follow_redirects=False, transport=transport, trust_env=False
        )
        self._clock = clock or SystemClock()

    async def get_json(
        self,
        provider: str,
        url: str,
        *,
        timeout_s: float,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The JSON body of ``GET url`` (any JSON value; the adapter checks its shape).

        Raises:
            ProviderError: timeout, connection, dns, tls, http_4xx, http_5xx,
                rate_limited (with ``retry_after_s``), empty or garbage.
        """
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._client.get(
                    url, params=params, headers=headers, timeout=timeout_s
                )
        except TimeoutError:
            raise ProviderError(provider, "timeout", f"no answer within {timeout_s:g} s") from None
        except httpx.TimeoutException as exc:
            raise ProviderError(provider, "timeout", type(exc).__name__) from None
        except httpx.TransportError as exc:
            raise ProviderError(provider, transport_reason(exc), _short(exc)) from None
        except httpx.DecodingError as exc:  # a body its Content-Encoding cannot undo
            raise ProviderError(provider, "garbage", _short(exc)) from None
        except httpx.RequestError as exc:
            raise ProviderError(provider, "connection", _short(exc)) from None
        except httpx.InvalidURL as exc:
            raise ProviderError(provider, "connection", f"invalid URL: {exc}") from None
        try:
            return self._decode(provider, response)
        finally:
            _unbind(response)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._client.aclose()

    def _decode(self, provider: str, response: httpx.Response) -> Any:
        status = response.status_code
        if status == 429:
            wait = retry_after_s(response.headers.get("retry-after"), self._clock.now())
            raise ProviderError(provider, "rate_limited", "429", retry_after_s=wait)
        if 400 <= status < 500:
            raise ProviderError(provider, "http_4xx", str(status))
        if status >= 500:
            raise ProviderError(provider, "http_5xx", str(status))
        if status != 200:
            raise ProviderError(provider, "wrong_shape", f"status {status}")
        return decode_body(provider, response.content)


def decode_body(provider: str, body: bytes) -> Any:
    """``body`` as JSON (NaN and Infinity tokens kept, for the checks to refuse).

    Raises:
        ProviderError: ``empty`` (no bytes, only whitespace) or ``garbage`` (not JSON,
            not UTF-8, too large).
    """
    if len(body) > MAX_BODY_BYTES:
        raise ProviderError(provider, "garbage", f"body of {len(body)} bytes")
    if not body.strip():
        raise ProviderError(provider, "empty", "empty body")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProviderError(provider, "garbage", f"not JSON: {body[:40]!r}") from None


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), None when
    absent or unreadable; never negative."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(text) - now).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def transport_reason(exc: BaseException) -> str:
    """``dns``, ``tls`` or ``connection``: what a transport error came from."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return "tls"
        if isinstance(seen, socket.gaierror):
            return "dns"
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    if any(hint in text for hint in _DNS_HINTS):
        return "dns"
    if "ssl" in text or "certificate" in text or "tls" in text:
        return "tls"
    return "connection"


def _unbind(response: httpx.Response) -> None:
    """Drop a read response's stream: httpx's stream refers back to its response, a
    reference cycle per request that only the garbage collector would free (its passes
    over many such cycles stall the event loop)."""
    response.stream = _READ


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"


async def counted(failures: Counter[str], call: Awaitable[T]) -> T:
    """The result of ``call``; a ProviderError it raises is counted in ``failures`` by
    reason, then raised again."""
    try:
        return await call
    except ProviderError as exc:
        failures[exc.reason] += 1
        raise
