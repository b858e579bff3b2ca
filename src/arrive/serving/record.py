"""Every answer recorded: counted in :mod:`arrive.monitoring.metrics` and in the recent
window health reads, and appended to the prediction log with the features it was given;
and every request that ended in an error, logged with the variant it was assigned."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import msgspec

from arrive.features.spec import FeatureScalar
from arrive.monitoring import metrics
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.schema.eta import EtaAnswer
from arrive.serving.answer import RecentAnswers

_encode: Final = msgspec.json.encode
Encoded = list[bytes | None]
"""Each answer's features as the prediction log's JSON (None: none were read)."""


class Recorder:
    """Records answers in the metrics, ``recent`` and ``log`` (None: no prediction log)."""

    def __init__(self, log: PredictionLog | None) -> None:
        self.log = log
        self.recent = RecentAnswers()
        self._counters: dict[tuple[str, str], Any] = {}

    def record(
        self,
        answers: list[EtaAnswer],
        values: list[dict[str, FeatureScalar]] | None,
        now: datetime,
        latency_s: float | None = None,
    ) -> Encoded | None:
        """Count ``answers`` (one increment per variant and reason) and log each with the
        features it was given (``values``, None for answers made without reading any)
        and the time the service took on their request (``latency_s``).

        Returns the features as logged (JSON, encoded once: the shadow rows of the same
        orders reuse them), or None without a log or features."""
        counts = Counter((answer.variant, answer.fallback or "none") for answer in answers)
        for key, count in counts.items():
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = metrics.PREDICTIONS.labels(*key)
            counter.inc(count)
            self.recent.add(key[1], count)
        if self.log is None:
            return None
        encoded: Encoded | None = None if values is None else [_encode(v) for v in values]
        self.log.extend(
            Predictions(
                [answer.request_id for answer in answers],
                [answer.order_id for answer in answers],
                now,
                [answer.variant for answer in answers],
                [answer.model_version for answer in answers],
                [None] * len(answers) if encoded is None else encoded,
                [answer.p50_s for answer in answers],
                [answer.p90_s for answer in answers],
                [answer.fallback for answer in answers],
                [answer.rollout for answer in answers],
                [latency_s] * len(answers),
            )
        )
        return encoded

    def failed(self, failure: Failure, now: datetime, latency_s: float) -> None:
        """Log the orders of a request that ended in an error (no answer, no features)."""
        if self.log is None:
            return
        n = len(failure.request_ids)
        self.log.extend(
            Predictions(
                failure.request_ids,
                failure.order_ids,
                now,
                failure.variants,
                failure.versions,
                [None] * n,
                [None] * n,
                [None] * n,
                [None] * n,
                failure.rollouts,
                [latency_s] * n,
                [failure.error] * n,
            )
        )


class Failure(msgspec.Struct, frozen=True):
    """A request that ended in an error: its orders, the variant, version and rollout each
    was assigned, and the error's kind (the exception's class name)."""

    request_ids: Sequence[str]
    order_ids: Sequence[str]
    variants: Sequence[str]
    versions: Sequence[str | None]
    rollouts: Sequence[str | None]
    error: str
