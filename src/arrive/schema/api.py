"""The bodies of the ETA API beyond one order's request and answer: batches, errors,
readiness. Shared by the service (:mod:`arrive.serving.http`) and the client
(:mod:`arrive.client`): both decode and encode with these types, and the OpenAPI
document is generated from them, so the three cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from arrive.schema.eta import EtaAnswer, EtaRequest


class BatchRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Several orders in one request (at most the service's ``max_batch``)."""

    orders: Annotated[
        list[EtaRequest],
        msgspec.Meta(min_length=1, description="The orders, answered in the same order."),
    ]


class BatchAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The answers of a batch, one per order and in the same order."""

    answers: list[EtaAnswer]


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """Why a request was refused (every 4xx and 5xx answer has this body)."""

    error: Annotated[str, msgspec.Meta(description="A stable code, e.g. `validation_error`.")]
    message: Annotated[str, msgspec.Meta(description="What went wrong, for people.")]
    field: Annotated[
        str | None,
        msgspec.Meta(description="Path of the offending field, e.g. `orders[3].pickup_lat`."),
    ] = None
    request_id: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """Whether this replica can answer (a model, or at least the heuristic, is loaded);
    ``reason`` says why not, or, when ready, why the version serving is not the alias's.
    The feature store's state does not count (see ``/healthz``)."""

    ready: bool
    reason: str | None = None
