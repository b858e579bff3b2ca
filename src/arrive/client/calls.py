"""What the sync and async clients share: turning orders into request bodies, the
retry policy, and turning an HTTP answer into a value or a typed error (no IO here).

Retries: only connection failures (refused, reset, closed before the answer) and 503
(overload, starting, draining) are retried, with full-jitter exponential back-off
(or the server's ``Retry-After`` when longer), within the call's deadline. 4xx is the
caller's mistake and 500 a bug: retrying helps neither. ``/v1/eta`` and
``/v1/eta/batch`` are idempotent (an answer changes nothing on the server but its
prediction log), so a request that may have reached the server is resent; every
attempt of a call carries the same ``X-Request-ID``, so the answers' request ids
(and any duplicate prediction-log lines) are the same.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec

from arrive.client.errors import (
    BadResponse,
    ClientError,
    RequestRejected,
    ServerError,
    ServerUnavailable,
)
from arrive.schema.api import ErrorBody
from arrive.schema.eta import EtaRequest

T = TypeVar("T")
Order = EtaRequest | Mapping[str, Any]

REQUEST_FIELDS: Final = frozenset(EtaRequest.__struct_fields__)
# columns of an orders table that are outcomes or bookkeeping, not context of the order
NOT_ATTRIBUTES: Final = frozenset({"status", "delivered_at", "duration_s", "source_line"})

_AT_PATH = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED = re.compile(r"^(?P<name>[a-z_]+): (?P<reason>.+)$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_error_decoder: Final = msgspec.json.Decoder(ErrorBody)


@dataclass(frozen=True)
class Retry:
    """How a call is retried.

    Attributes:
        attempts: attempts at most (1: never retry).
        backoff_s: the first back-off's upper bound; doubled per attempt.
        max_backoff_s: the back-off's cap.
        rng: the jitter's random source (seed it in tests).
    """

    attempts: int = 4
    backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts: must be at least 1")
        if not 0 <= self.backoff_s <= self.max_backoff_s:
            raise ValueError("backoff_s: must be between 0 and max_backoff_s")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` >= 1 failed)."""
        cap = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        jittered = self.rng.uniform(0.0, cap)
        return jittered if retry_after is None else max(jittered, min(retry_after, 30.0))


def to_request(order: Order, where: str = "") -> EtaRequest:
    """``order`` as the API's request type (a mapping: its request fields, and its other
    columns but outcomes as ``attributes``).

    Raises:
        RequestRejected: the order does not fit the API, naming the field (after ``where``).
    """
    if isinstance(order, EtaRequest):
        return order
    try:
        return msgspec.convert(request_fields(order), EtaRequest)
    except msgspec.ValidationError as exc:
        field_name, reason = field_and_reason(str(exc))
        path = f"{where}.{field_name}" if where and field_name else where or field_name
        raise RequestRejected(path, reason) from None


def request_fields(order: Mapping[str, Any]) -> dict[str, Any]:
    """``order``'s request fields, its other columns but outcomes in ``attributes``,
    without nulls and NaNs (missing values, as a data frame has them): what
    :func:`to_request` checks and sends."""
    if set(order) <= REQUEST_FIELDS:
        return {k: v for k, v in order.items() if not _missing(v)}
    body: dict[str, Any] = {}
    nested = order.get("attributes") or {}
    attributes = {k: v for k, v in nested.items() if not _missing(v)}
    for name, value in order.items():
        if _missing(value) or name == "attributes" or name in NOT_ATTRIBUTES:
            continue
        if name in REQUEST_FIELDS:
            body[name] = value
        else:
            attributes[name] = value
    if attributes:
        body["attributes"] = attributes
    return body


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def to_requests(orders: Iterable[Order]) -> list[EtaRequest]:
    """Every order as a request; the first misfit names its index (``orders[3].items``)."""
    return [to_request(order, f"orders[{i}]") for i, order in enumerate(orders)]


def field_and_reason(message: str) -> tuple[str | None, str]:
    """The field path and the reason in one of msgspec's validation messages."""
    match = _AT_PATH.match(message)
    reason = match["reason"] if match else message
    path = ((match["path"] if match else None) or "").removeprefix(".") or None
    if named := _MISSING.match(reason):
        return _join(path, named["name"]), "required field is missing"
    if named := _NAMED.match(reason):
        return _join(path, named["name"]), named["reason"]
    return path, reason


def _join(path: str | None, name: str) -> str:
    return f"{path}.{name}" if path else name


def outcome(
    status: int, content: bytes, decoder: msgspec.json.Decoder[T], request_id: str
) -> T | ClientError:
    """The decoded body of a 200, else the error it stands for (a 503's is retryable:
    :class:`ServerUnavailable`)."""
    if status == 200:
        try:
            return decoder.decode(content)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            return BadResponse(f"the answer does not fit the API: {exc}", status=status)
    return _refusal(status, content, request_id)


def decoded(decoder: msgspec.json.Decoder[T], content: bytes) -> T:
    """``content`` decoded as the API promises.

    Raises:
        BadResponse: it does not fit.
    """
    try:
        return decoder.decode(content)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadResponse(f"the answer does not fit the API: {exc}") from None


def _refusal(status: int, content: bytes, request_id: str) -> ClientError:
    body = _error_body(content)
    rid = body.request_id if body is not None and body.request_id else request_id
    message = body.message if body is not None else _snippet(content)
    if status == 503:
        return ServerUnavailable(f"the service is unavailable (503): {message}", status=503)
    if not 400 <= status < 500:
        kind = ServerError if status >= 500 else BadResponse
        return kind(f"the service answered {status}: {message}", status=status, request_id=rid)
    if body is None:
        return BadResponse(f"{status} without an error body: {message}", status=status)
    return RequestRejected(
        body.field, body.message, status=status, error=body.error, request_id=rid
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` header in seconds (None when absent or a date)."""
    value = headers.get("retry-after")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def _error_body(content: bytes) -> ErrorBody | None:
    try:
        return _error_decoder.decode(content)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def _snippet(content: bytes) -> str:
    text = content[:200].decode("utf-8", errors="replace")
    return repr(text) if text else "empty body"
