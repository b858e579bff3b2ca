"""What the status page shows, gathered (:mod:`arrive.monitoring.status_page` renders it).

* :func:`scrape` — one collection of the registry ``/metrics`` exports;
* :class:`QualityHistory` — the rows of segment ``all`` in the recent quality files;
* :func:`ask_prometheus` — the service-side objectives' error ratios and the alerts firing;
* :func:`alerts_seen` — the alert conditions the monitor sees true itself;
* :func:`calibration_budget` — the calibration objective over the recent windows.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import polars as pl
from prometheus_client import CollectorRegistry

from arrive.errors import SourceUnavailable
from arrive.monitoring.monitor import last_window, quality_files
from arrive.monitoring.prometheus_api import Queries, Series
from arrive.monitoring.quality import QUALITY
from arrive.monitoring.slo import SloConfig

logger = logging.getLogger(__name__)

Labels = tuple[tuple[str, str], ...]
"""A series' labels, sorted by name."""


@dataclass(frozen=True)
class Scrape:
    """One collection of a registry: each sample by name and labels, and the families."""

    families: frozenset[str]
    samples: Mapping[str, Mapping[Labels, float]]

    def series(self, name: str) -> Mapping[Labels, float]:
        return self.samples.get(name, {})

    def value(self, name: str, labels: Labels = ()) -> float | None:
        return self.series(name).get(labels)


def scrape(registry: CollectorRegistry) -> Scrape:
    """The samples ``registry`` exports now (as ``/metrics`` would show them)."""
    samples: dict[str, dict[Labels, float]] = defaultdict(dict)
    families = set()
    for family in registry.collect():
        families.add(family.name)
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = float(sample.value)
    return Scrape(frozenset(families), dict(samples))


class QualityHistory:
    """The rows of segment ``all`` in the quality files of ``out_dir`` (files are
    written once, so each is read once and kept while it holds recent windows)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self._lock = threading.Lock()
        self._read: dict[str, pl.DataFrame] = {}

    def since(self, start: datetime) -> pl.DataFrame:
        """Rows (:data:`QUALITY`) of the windows starting at or after ``start``."""
        frames: dict[str, pl.DataFrame] = {}
        with self._lock:
            for path in quality_files(self.out_dir):
                if last_window(path) < start:
                    continue
                frame = self._read.get(path.name)
                if frame is None:
                    frame = _overall(path)
                if frame is not None:
                    frames[path.name] = frame
            self._read = frames
        if not frames:
            return pl.DataFrame(schema=QUALITY)
        return pl.concat(frames.values()).filter(pl.col("window_start") >= start)


def _overall(path: Path) -> pl.DataFrame | None:
    try:
        return pl.read_parquet(path).filter(pl.col("segment_kind") == "all")
    except (OSError, pl.exceptions.PolarsError) as exc:  # replaced or removed since listed
        logger.warning("status page: %s not read (%s)", path.name, exc)
        return None


@dataclass(frozen=True)
class Remote:
    """What Prometheus answered: error ratios by (objective, window), firing alerts, or
    why there is nothing (``note``)."""

    ratios: Mapping[tuple[str, str], float] = field(default_factory=dict)
    firing: Series = field(default_factory=list)
    note: str | None = None


RATIOS: Final = '{__name__=~"arrive_slo:error_ratio:rate(1h|3d)"}'
FIRING: Final = 'ALERTS{alertstate="firing"}'


def ask_prometheus(prometheus: Queries | None) -> Remote:
    """The error ratios and firing alerts ``prometheus`` holds, or why there are none."""
    if prometheus is None:
        return Remote(note="no Prometheus given (--prometheus-url)")
    try:
        ratios = prometheus.query(RATIOS)
        firing = prometheus.query(FIRING)
    except SourceUnavailable as exc:
        return Remote(note=str(exc))
    return Remote(
        {
            (labels.get("slo", ""), labels["__name__"].rsplit("rate", 1)[-1]): value
            for labels, value in ratios
        },
        sorted(firing, key=lambda item: sorted(item[0].items())),
    )


@dataclass(frozen=True)
class Alert:
    """An alert condition the monitor sees true now: the series' value (a share, or a
    PSI for ``FeatureDrift``; None when the series has no value)."""

    name: str
    labels: Labels
    value: float | None


def alerts_seen(found: Scrape, slo: SloConfig) -> list[Alert]:
    """The cause alerts whose condition holds in ``found``: a segment off its band, a
    feature drifted, a feature's skew above the SLO file's limit."""
    alerts = [
        Alert("CalibrationDrift", labels, found.value("arrive_online_p90_coverage", labels))
        for labels, flag in sorted(found.series("arrive_calibration_drift").items())
        if flag == 1
    ]
    alerts += [
        Alert("FeatureDrift", labels, found.value("arrive_feature_psi", labels))
        for labels, flag in sorted(found.series("arrive_feature_drift").items())
        if flag == 1
    ]
    limit = slo.alerts.skew_mismatch_ratio
    alerts += [
        Alert("FeatureSkew", labels, ratio)
        for labels, ratio in sorted(found.series("arrive_feature_skew_mismatch_ratio").items())
        if ratio > limit
    ]
    return alerts


@dataclass(frozen=True)
class Budget:
    """The calibration objective over the recent windows."""

    windows: int
    bad: int
    objective: float

    @property
    def spent(self) -> float:
        """Share of the error budget spent (above 1: overspent)."""
        return self.bad / self.windows / (1 - self.objective)


def calibration_budget(history: pl.DataFrame, objective: float) -> Budget:
    """Windows of ``history`` (segment ``all`` rows) and those whose P90 coverage drifted
    for any version or variant."""
    per_window = history.group_by("window_start").agg(pl.col("calibration_drift").any())
    bad = int(per_window.get_column("calibration_drift").sum())
    return Budget(per_window.height, bad, objective)
