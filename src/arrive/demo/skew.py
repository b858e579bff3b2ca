"""The monitor's production skew check, replayed over a live replay's prediction log.

``arrive monitor`` holds a sample of the answers it reads
(:class:`arrive.monitoring.monitor_skew.SkewCheck`) and, every ``every_s`` seconds of its
clock, recomputes their features offline, point-in-time, from the event log and
compares them with the values served (:func:`arrive.monitoring.skew.skew_sample`);
:class:`arrive.monitoring.drift_metrics.DriftMetrics` puts the mismatch ratio per feature
on ``/metrics`` as ``arrive_feature_skew_mismatch_ratio{feature}``, where it stays until
the next check that compared something.

Here the monitor's clock is the replay's: once the replay is over, the service's published
prediction log is read back and offered to a :class:`SkewCheck` in replay-time order, one
check every :data:`EVERY` of replay time, and after each the ratios are collected from a
:class:`DriftMetrics` into the injection's samples. Each check builds features over the
whole event log, so the checks run from :data:`LEAD` before the injected stretch to
:data:`LEAD` after it rather than over every day of the replay.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from pathlib import Path
from typing import Final

import polars as pl

from arrive.clock import ManualClock
from arrive.demo.inject import Injection
from arrive.monitoring.drift_metrics import DriftMetrics
from arrive.monitoring.monitor_skew import SkewCheck, SkewSettings
from arrive.monitoring.prediction_log import published

EVERY: Final = timedelta(minutes=5)
"""Replay time between two skew checks."""
LEAD: Final = timedelta(hours=1)
"""How long before and after the injected stretch the skew checks run."""
METRIC: Final = "arrive_feature_skew_mismatch_ratio"
_LOG: Final = pl.Schema(
    {"order_id": pl.String(), "time": pl.Datetime("us", "UTC"), "features": pl.String()}
)


def replay_skew(
    log_dir: Path,
    orders: Collection[str],
    data_dir: Path,
    injection: Injection,
    *,
    timezone: str,
    every: timedelta = EVERY,
    lead: timedelta = LEAD,
    sample: int = 200,
) -> None:
    """Run the monitor's skew check over the answers to ``orders`` in ``log_dir``'s
    published prediction log, against ``data_dir``'s event log, every ``every`` from
    ``lead`` before ``injection`` to ``lead`` after it; record the mismatch ratio per
    feature after each check into ``injection.samples``."""
    log = _read(log_dir, orders)
    moment = injection.start - lead
    clock = ManualClock(moment)
    settings = SkewSettings(data_dir, every_s=every.total_seconds(), sample=sample)
    check = SkewCheck(settings, clock, timezone)
    metrics = DriftMetrics()
    times = pl.col("time")
    while moment < injection.end + lead:
        later = moment + every
        check.add(log.filter((times > moment) & (times <= later)))
        clock.set(later)
        found = check.run() if check.due() else None
        if found is not None:
            metrics.set_skew(found)
        injection.record(later, _ratios(metrics), "feature")
        moment = later


def _read(log_dir: Path, orders: Collection[str]) -> pl.DataFrame:
    wanted = list(orders)
    frames = [
        pl.read_parquet(path, columns=["order_id", "time", "features"]).filter(
            pl.col("order_id").is_in(wanted)
        )
        for path in published(log_dir)
    ]
    if not frames:
        return pl.DataFrame(schema=_LOG)
    return pl.concat(frames, how="vertical_relaxed").sort("time")


def _ratios(metrics: DriftMetrics) -> dict[str, float]:
    return {
        sample.labels["feature"]: sample.value
        for family in metrics.collect()
        if family.name == METRIC
        for sample in family.samples
    }
