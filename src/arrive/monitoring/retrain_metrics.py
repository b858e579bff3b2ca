"""Metrics of ``arrive retrain --every``: how each run ended and when the last of each
outcome happened, so an alert fires when runs fail or stop succeeding.

* ``arrive_retrain_runs_total{outcome}``: runs by outcome (promoted, rolled_out,
  registered, unchanged, blocked, skipped, failed);
* ``arrive_retrain_last_run_timestamp_seconds{outcome}``: Unix time of the last run with
  that outcome.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import Final

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

OUTCOMES: Final = (
    "promoted",
    "rolled_out",
    "registered",
    "unchanged",
    "blocked",
    "skipped",
    "failed",
)
SUCCEEDED: Final = ("promoted", "rolled_out", "registered", "unchanged")
"""Outcomes of a run that did its job (whatever it decided)."""


class RetrainMetrics:
    """A Prometheus collector of the runs recorded with :meth:`record`."""

    def __init__(self) -> None:
        self._runs: Counter[str] = Counter()
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, outcome: str, at_unix_s: float) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown retrain outcome {outcome!r}")
        with self._lock:
            self._runs[outcome] += 1
            self._last[outcome] = at_unix_s

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            runs, last = dict(self._runs), dict(self._last)
        total = CounterMetricFamily(
            "arrive_retrain_runs", "Retraining runs by outcome.", labels=["outcome"]
        )
        for outcome in OUTCOMES:
            total.add_metric([outcome], runs.get(outcome, 0))
        stamp = GaugeMetricFamily(
            "arrive_retrain_last_run_timestamp_seconds",
            "Unix time of the last retraining run with this outcome.",
            labels=["outcome"],
        )
        for outcome, when in sorted(last.items()):
            stamp.add_metric([outcome], when)
        return [total, stamp]
