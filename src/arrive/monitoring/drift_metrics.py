"""The drift and skew gauges of ``arrive monitor``, for its own registry.

:class:`DriftMetrics` holds the latest results of :func:`arrive.monitoring.drift.drift_by_version`
and :func:`arrive.monitoring.skew.skew_sample` and shows them at each scrape:

* ``arrive_feature_psi{version,feature}`` — PSI of the feature in the last window.
* ``arrive_feature_drift{version,feature}`` — 1 when that PSI is above the threshold with
  enough orders, else 0.
* ``arrive_feature_skew_mismatch_ratio{feature}`` — share of the sampled answers whose
  recomputed offline value differs from the served one.

A feature without a value (no reference profile, nothing compared) has no series: a gauge
never shows a number that was not measured. Register it once::

    registry.register(drift_metrics := DriftMetrics())
    drift_metrics.set_drift(drift_by_version(window, profiles))

Thread-safe: the monitor updates it while Prometheus scrapes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import polars as pl
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class DriftMetrics(Collector):
    """The latest drift and skew results, as gauges (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drift: list[tuple[str, str, float, bool]] = []
        self._skew: list[tuple[str, float]] = []

    def set_drift(self, frame: pl.DataFrame) -> None:
        """Show ``frame`` (:data:`arrive.monitoring.drift.VERSION_SCHEMA` rows) from now on."""
        rows = frame.filter(pl.col("feature").is_not_null() & pl.col("psi").is_not_null())
        found = list(rows.select("version", "feature", "psi", "drifted").iter_rows())
        with self._lock:
            self._drift = found

    def set_skew(self, frame: pl.DataFrame) -> None:
        """Show ``frame`` (:data:`arrive.monitoring.skew.SCHEMA` rows) from now on."""
        rows = frame.filter(pl.col("mismatch_ratio").is_not_null())
        found = list(rows.select("feature", "mismatch_ratio").iter_rows())
        with self._lock:
            self._skew = found

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            drift, skew = list(self._drift), list(self._skew)
        psi = GaugeMetricFamily(
            "arrive_feature_psi",
            "PSI of a feature against its training profile",
            labels=["version", "feature"],
        )
        drifted = GaugeMetricFamily(
            "arrive_feature_drift",
            "1 when the feature's PSI is above the threshold with enough orders",
            labels=["version", "feature"],
        )
        for version, feature, value, flag in drift:
            psi.add_metric([version, feature], value)
            drifted.add_metric([version, feature], 1.0 if flag else 0.0)
        ratio = GaugeMetricFamily(
            "arrive_feature_skew_mismatch_ratio",
            "Share of sampled answers whose offline-recomputed feature differs from the served one",
            labels=["feature"],
        )
        for feature, value in skew:
            ratio.add_metric([feature], value)
        return [psi, drifted, ratio]
