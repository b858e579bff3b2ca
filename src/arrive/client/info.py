"""What the client reads from the service's OpenAPI document: its batch limit and version."""

from __future__ import annotations

from typing import Any

import msgspec

from arrive.client.errors import BadResponse
from arrive.schema.eta import Health


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The service's model and API.

    Attributes:
        model_version: the registry version serving (None: the heuristic answers).
        api_version: the OpenAPI document's ``info.version``.
        max_batch: the most orders one batch may hold.
        ready: whether the replica that answered can answer.
    """

    model_version: str | None
    api_version: str
    max_batch: int
    ready: bool


def max_batch_of(document: dict[str, Any]) -> int:
    """``BatchRequest.orders.maxItems`` of an OpenAPI document.

    Raises:
        BadResponse: the document has no such limit.
    """
    try:
        value = document["components"]["schemas"]["BatchRequest"]["properties"]["orders"][
            "maxItems"
        ]
    except (KeyError, TypeError):
        raise BadResponse(
            "/openapi.json: no BatchRequest.orders.maxItems (the batch limit)"
        ) from None
    if not isinstance(value, int) or value < 1:
        raise BadResponse(f"/openapi.json: the batch limit is {value!r}, not a positive integer")
    return value


def model_info_of(document: dict[str, Any], health: Health) -> ModelInfo:
    """The :class:`ModelInfo` of an OpenAPI document and a ``/healthz`` answer."""
    info = document.get("info") or {}
    return ModelInfo(
        model_version=health.model_version,
        api_version=str(info.get("version", "")),
        max_batch=max_batch_of(document),
        ready=health.ready,
    )
