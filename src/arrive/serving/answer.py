"""What the ETA service answers, and the transport-neutral contract that produces it.

HTTP routes, batch scoring and shadow scoring all call a :class:`Predictor`; none of them
knows about models, stores or fallbacks. Every answer carries the variant that produced it
and, when the heuristic answered, the reason code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal, Protocol

import msgspec

from arrive.schema.events import OrderCreated

Variant = Literal["production", "canary", "shadow", "heuristic"]
FallbackReason = Literal[
    "no_model",
    "model_error",
    "stale_features",
    "store_unavailable",
    "deadline",
    "overload",
    "kill_switch",
]
FALLBACK_REASONS: Final[tuple[FallbackReason, ...]] = (
    "no_model",
    "model_error",
    "stale_features",
    "store_unavailable",
    "deadline",
    "overload",
    "kill_switch",
)


class EtaAnswer(msgspec.Struct, frozen=True):
    """The ETA of one order (the response body for it).

    Attributes:
        request_id: the caller's request id, echoed.
        order_id: the order's id.
        p50_s: median delivery duration from creation, seconds.
        p90_s: 90th percentile delivery duration from creation, seconds (>= ``p50_s``).
        promised_at: order creation + ``p90_s``, UTC.
        model_version: the registry version that answered; None when the heuristic did.
        variant: ``production``, ``canary``, ``shadow`` or ``heuristic``.
        fallback: None when the model answered, else why the heuristic did.
        stale_features: features that were stale or missing for this order.
    """

    request_id: str
    order_id: str
    p50_s: float
    p90_s: float
    promised_at: datetime
    model_version: str | None
    variant: Variant
    fallback: FallbackReason | None
    stale_features: list[str]


class ModelFinding(msgspec.Struct, frozen=True, kw_only=True):
    """What checking one model version found.

    Attributes:
        version: the registry version checked.
        status: ``ok`` (its probe batch reproduces the reference predictions),
            ``unverified`` (it parses and scores, but was registered without reference
            predictions) or ``broken`` (why in ``reason``).
        reason: what was found, in one line.
    """

    version: str
    status: Literal["ok", "unverified", "broken"]
    reason: str


class ReloadAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What a reload found and what serves after it.

    Attributes:
        model_version: the version serving now (None: the heuristic answers).
        alias_version: the version the served alias points at.
        checks: each version whose files were checked by this reload.
    """

    model_version: str | None
    alias_version: str | None = None
    checks: list[ModelFinding] = msgspec.field(default_factory=list)


class Predictor(Protocol):
    """The transport-neutral ETA hot path."""

    async def predict(
        self, orders: Sequence[OrderCreated], request_ids: Sequence[str]
    ) -> list[EtaAnswer]:
        """One answer per order, in order; never raises for store, deadline, overload or
        model failures (those answer with the heuristic and a reason code)."""
        ...

    def ready(self) -> tuple[bool, str]:
        """``(True, "")`` when a model is loaded and the store reachable, else the reason
        (ready, with a note, when the model serving is not the alias's)."""
        ...

    async def reload(self) -> ReloadAnswer:
        """Re-read the served alias from the registry, check its files; say what serves."""
        ...

    def set_kill_switch(self, on: bool) -> None:
        """Force (or stop forcing) the heuristic for every answer (reason ``kill_switch``)."""
        ...
