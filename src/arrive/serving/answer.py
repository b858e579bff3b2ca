"""What the ETA service answers, and the transport-neutral contract that produces it.

HTTP routes, batch scoring and shadow scoring all call a :class:`Predictor`; none of them
knows about models, stores or fallbacks. Every answer carries the variant that produced it
and, when the heuristic answered, the reason code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Final, Literal, Protocol

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


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """The process is alive (``/healthz`` always answers 200 with this), and how its
    dependencies fare: ``status`` is ``degraded`` when ``problems`` is not empty."""

    status: Literal["ok", "degraded"] = "ok"
    ready: bool = True
    model_version: Annotated[
        str | None, msgspec.Meta(description="The model serving; null when the heuristic does.")
    ] = None
    store: Annotated[
        Literal["up", "down", "unchecked"],
        msgspec.Meta(description="The feature store, as its last ping or read found it."),
    ] = "unchecked"
    kill_switch: bool = False
    recent_answers: Annotated[
        int, msgspec.Meta(description="Answers of this worker counted in `recent_fallbacks`.")
    ] = 0
    recent_fallbacks: Annotated[
        dict[str, int],
        msgspec.Meta(description="Of the recent answers, those of the heuristic by reason."),
    ] = {}
    problems: Annotated[
        list[str], msgspec.Meta(description="What is wrong with a dependency, for people.")
    ] = []


class RecentAnswers:
    """Answers by fallback reason (``none`` for the model's) over the last ``size`` to
    ``2 * size`` answers: two windows, the older dropped when the newer fills."""

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self.current: Counter[str] = Counter()
        self.previous: Counter[str] = Counter()
        self._filled = 0

    def add(self, reason: str, count: int) -> None:
        """Count ``count`` answers with ``reason``."""
        self.current[reason] += count
        self._filled += count
        if self._filled >= self.size:
            self.previous, self.current, self._filled = self.current, Counter(), 0

    def counts(self) -> Counter[str]:
        """The recent answers by reason."""
        return self.previous + self.current


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
        """``(True, "")`` when this replica can answer (a model, or at least a heuristic
        learnt from the registry, is loaded), else the reason. Dependencies such as the
        feature store do not count: their failures are answered with the heuristic,
        and reported by :meth:`health`. Ready, with a note, when the model serving
        is not the alias's (the alias's version was refused)."""
        ...

    def health(self) -> Health:
        """How the replica and its dependencies fare (no IO: cached state)."""
        ...

    async def reload(self) -> ReloadAnswer:
        """Re-read the served alias from the registry, check its files; say what serves."""
        ...

    def set_kill_switch(self, on: bool) -> None:
        """Force (or stop forcing) the heuristic for every answer (reason ``kill_switch``)."""
        ...
