"""Breakdowns of a model's test predictions that a report draws, with their uncertainty.

Pure functions over arrays (no IO), every duration in seconds:

* :func:`wilson_interval`: the 95 % Wilson score interval of a share (a coverage, a
  late rate) — honest at small ``n`` and near 0 or 1, where the normal one is not.
* :func:`coverage_status`: is an observed coverage on target, over- or under-covered,
  given the Wilson interval of its ``n`` orders?
* :func:`breakdown`: MAE, bias and P90 coverage with intervals per group of orders
  (day, distance band, duration band, predicted-P90 band), in a given order.
* :func:`distance_bands`, :func:`duration_bands`, :func:`p90_bands`, :func:`local_days`:
  the grouping labels.

Example:
    >>> [round(x, 4) for x in wilson_interval(9, 10)]
    [0.5958, 0.9821]
    >>> coverage_status(0.93, 100, 0.9)
    'on target'
    >>> coverage_status(0.93, 10_000, 0.9)
    'over-covered'
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Final, Literal

import msgspec
import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import DataError
from arrive.evaluation import Z95, mean_interval

__all__ = [
    "MIN_ORDERS",
    "BandRow",
    "Status",
    "breakdown",
    "coverage_status",
    "distance_bands",
    "duration_bands",
    "local_days",
    "p90_bands",
    "wilson_interval",
]

FloatArray = npt.NDArray[np.float64]
Status = Literal["on target", "over-covered", "under-covered"]
MIN_ORDERS: Final = 30
"""Groups with fewer orders are drawn greyed out: their numbers are mostly noise."""
_DISTANCE_EDGES_KM: Final = (2.0, 5.0, 10.0, 15.0)
_DURATION_EDGES_MIN: Final = (15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 50.0)


class BandRow(msgspec.Struct, frozen=True, kw_only=True):
    """The model's scores on one group of test orders, with 95 % intervals.

    Attributes:
        label: the group's label.
        n: orders in the group (at least 1).
        mae_s, mae_low_s, mae_high_s: MAE of the P50 and its normal interval, seconds.
        bias_s: mean of actual minus P50 (positive: later than predicted), seconds.
        coverage_p90, coverage_low, coverage_high: share of actuals at or below the P90,
            and its Wilson interval.
    """

    label: str
    n: int
    mae_s: float
    mae_low_s: float
    mae_high_s: float
    bias_s: float
    coverage_p90: float
    coverage_low: float
    coverage_high: float

    @property
    def small(self) -> bool:
        """Fewer than :data:`MIN_ORDERS` orders: read as noise."""
        return self.n < MIN_ORDERS


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` (``(0, 1)`` when ``n`` is 0)."""
    if n <= 0:
        return 0.0, 1.0
    share = successes / n
    centre = share + z * z / (2 * n)
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def coverage_status(coverage: float, n: int, target: float) -> Status:
    """``on target`` when ``target`` lies in the Wilson interval of ``coverage`` over ``n``
    orders; otherwise over- or under-covered (the quantile is too late / too early)."""
    low, high = wilson_interval(round(coverage * n), n)
    if low <= target <= high:
        return "on target"
    return "over-covered" if coverage > target else "under-covered"


def breakdown(
    y_true_s: npt.ArrayLike,
    p50_s: npt.ArrayLike,
    p90_s: npt.ArrayLike,
    labels: Sequence[str] | pl.Series,
    order: Sequence[str] | None = None,
) -> tuple[BandRow, ...]:
    """Scores per label, in ``order`` (labels without orders are skipped) or sorted by label.

    Raises:
        DataError: the arrays and labels have different lengths.
    """
    y, p50, p90 = (np.asarray(a, dtype=np.float64) for a in (y_true_s, p50_s, p90_s))
    keys = np.asarray(list(labels), dtype=object)
    if not len(y) == len(p50) == len(p90) == len(keys):
        raise DataError(
            f"breakdown: {len(y)} actuals, {len(p50)} P50s, {len(p90)} P90s, {len(keys)} labels"
        )
    wanted = list(order) if order is not None else sorted(set(keys.tolist()))
    rows = []
    for label in wanted:
        mask = keys == label
        if mask.any():
            rows.append(_band(label, y[mask], p50[mask], p90[mask]))
    return tuple(rows)


def _band(label: str, y: FloatArray, p50: FloatArray, p90: FloatArray) -> BandRow:
    low, high = mean_interval(np.abs(y - p50))
    covered = int(np.count_nonzero(y <= p90))
    cov_low, cov_high = wilson_interval(covered, len(y))
    return BandRow(
        label=label,
        n=len(y),
        mae_s=float(np.mean(np.abs(y - p50))),
        mae_low_s=max(0.0, low),
        mae_high_s=high,
        bias_s=float(np.mean(y - p50)),
        coverage_p90=covered / len(y),
        coverage_low=cov_low,
        coverage_high=cov_high,
    )


def distance_bands(distance_km: npt.ArrayLike) -> tuple[list[str], list[str]]:
    """Labels of pickup-to-drop distance bands in km (NaN: ``"unknown"``), and their order."""
    return _bands(distance_km, _DISTANCE_EDGES_KM)


def duration_bands(y_true_s: npt.ArrayLike) -> tuple[list[str], list[str]]:
    """Labels of actual-duration bands in minutes, and their order."""
    return _bands(np.asarray(y_true_s, dtype=np.float64) / 60, _DURATION_EDGES_MIN)


def p90_bands(p90_s: npt.ArrayLike, bins: int = 10) -> tuple[list[str], list[str]]:
    """Labels of (about) equal-count bands of the predicted P90, in minutes, and their order."""
    minutes = np.asarray(p90_s, dtype=np.float64) / 60
    inner = np.unique(np.round(np.quantile(minutes, np.linspace(0, 1, bins + 1)[1:-1]), 1))
    return _bands(minutes, tuple(float(e) for e in inner))


def local_days(created_at: pl.Series, timezone: str) -> list[str]:
    """The local calendar day (``03-30 Wed``) of each creation time; sorted labels are in
    time order within one year."""
    times = created_at
    if isinstance(times.dtype, pl.Datetime) and times.dtype.time_zone is None:
        times = times.dt.replace_time_zone("UTC")
    return times.dt.convert_time_zone(timezone).dt.strftime("%m-%d %a").to_list()


def _bands(values: npt.ArrayLike, edges: Sequence[float]) -> tuple[list[str], list[str]]:
    array = np.asarray(values, dtype=np.float64)
    names = [f"< {edges[0]:g}"] if edges else ["all"]
    names += [f"{a:g}–{b:g}" for a, b in itertools.pairwise(edges)]
    names += [f"≥ {edges[-1]:g}"] if edges else []
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), array, side="right")
    labels = ["unknown" if math.isnan(v) else names[i] for v, i in zip(array, index, strict=True)]
    order = names + (["unknown"] if "unknown" in labels else [])
    return labels, order
