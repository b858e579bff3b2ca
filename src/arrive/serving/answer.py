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


class Predictor(Protocol):
    """The transport-neutral ETA hot path."""

    async def predict(
        self, orders: Sequence[OrderCreated], request_ids: Sequence[str]
    ) -> list[EtaAnswer]:
        """One answer per order, in order; never raises for store, deadline, overload or
        model failures (those answer with the heuristic and a reason code)."""
        ...

    def ready(self) -> tuple[bool, str]:
        """``(True, "")`` when a model is loaded and the store reachable, else the reason."""
        ...

    async def reload(self) -> str:
        """Re-read the served alias from the registry; return the version now serving."""
        ...

    def set_kill_switch(self, on: bool) -> None:
        """Force (or stop forcing) the heuristic for every answer (reason ``kill_switch``)."""
        ...
