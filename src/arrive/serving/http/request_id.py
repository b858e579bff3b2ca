"""Request ids: the caller's (body or ``X-Request-ID``) or a fresh one, kept in the ASGI scope."""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from typing import Any, Final

from arrive.schema.eta import REQUEST_ID_PATTERN

HEADER: Final = b"x-request-id"
_SCOPE_KEY: Final = "arrive.request_id"
_VALID: Final = re.compile(REQUEST_ID_PATTERN)


def new_request_id() -> str:
    """A fresh random request id (32 hex digits)."""
    return os.urandom(16).hex()


def header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    """The value of header ``name`` (lower case) in an ASGI scope, or None."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def header_request_id(scope: MutableMapping[str, Any]) -> str | None:
    """The ``X-Request-ID`` header when present and valid; None when absent.

    Raises:
        ValueError: the header is present but not a valid request id.
    """
    text = header(scope, HEADER)
    if text is not None and _VALID.fullmatch(text) is None:
        raise ValueError(text)
    return text


def remember(scope: MutableMapping[str, Any], request_id: str) -> str:
    """Record ``request_id`` as the request's (error answers echo it); returns it."""
    scope[_SCOPE_KEY] = request_id
    return request_id


def request_id_of(scope: MutableMapping[str, Any]) -> str:
    """The request's id: the one recorded, else a valid header, else a fresh one."""
    rid = scope.get(_SCOPE_KEY)
    if rid is None:
        try:
            rid = header_request_id(scope) or new_request_id()
        except ValueError:
            rid = new_request_id()
        scope[_SCOPE_KEY] = rid
    return str(rid)
