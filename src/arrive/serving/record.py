"""Every answer recorded: counted in :mod:`arrive.monitoring.metrics` and in the recent
window health reads, and appended to the prediction log with the features it was given."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from arrive.features.spec import FeatureScalar
from arrive.monitoring import metrics
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.schema.eta import EtaAnswer
from arrive.serving.answer import RecentAnswers


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
    ) -> None:
        """Count ``answers`` (one increment per variant and reason) and log each with the
        features it was given (``values``, None for answers made without reading any)
        and the time the service took on their request (``latency_s``)."""
        counts = Counter((answer.variant, answer.fallback or "none") for answer in answers)
        for key, count in counts.items():
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = metrics.PREDICTIONS.labels(*key)
            counter.inc(count)
            self.recent.add(key[1], count)
        if self.log is not None:
            self.log.extend(
                Predictions(
                    [answer.request_id for answer in answers],
                    [answer.order_id for answer in answers],
                    now,
                    [answer.variant for answer in answers],
                    [answer.model_version for answer in answers],
                    [None] * len(answers) if values is None else values,
                    [answer.p50_s for answer in answers],
                    [answer.p90_s for answer in answers],
                    [answer.fallback for answer in answers],
                    [answer.rollout for answer in answers],
                    [latency_s] * len(answers),
                )
            )
