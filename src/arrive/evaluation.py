"""Offline evaluation of quantile ETA predictions against the heuristic.

Pure functions over arrays (no IO), shared by offline evaluation (training) and the
online one (monitoring): :func:`evaluate` scores the model's and the
heuristic's quantile predictions side by side, overall, by hour of day and per
caller-supplied segment; :func:`metrics_json` flattens the result into the
``metrics.json`` record stored with a model. Every duration is in seconds.

Definitions (``y`` the actual duration, ``p_q`` the prediction of quantile ``q``):

* MAE / RMSE of the P50 prediction; the MAE with its 95 % normal interval
  (overall and per segment value).
* Pinball loss of ``q``: mean of ``max(q * (y - p_q), (q - 1) * (y - p_q))``.
* Coverage of ``q``: share of rows with ``y <= p_q`` (ideal: ``q``).
* Late rate: share of rows with ``y > p_90`` (the promise shown to users is P90).
* Width: mean of ``p_90 - p_50``.
* Crossings: rows where a higher quantile is below a lower one.

Example:
    >>> import numpy as np
    >>> data = EvalInput(
    ...     y_true_s=np.array([100.0, 200.0]),
    ...     pred_s=np.array([[90.0, 150.0], [210.0, 260.0]]),
    ...     heuristic_s=np.array([[120.0, 180.0], [120.0, 180.0]]),
    ...     quantiles=(0.5, 0.9),
    ...     created_at=np.array(["2024-01-01T08:00", "2024-01-01T09:30"], "datetime64[us]"),
    ... )
    >>> result = evaluate(data)
    >>> result.model.mae_s, result.heuristic.mae_s, result.model.late_rate
    (10.0, 50.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import ConfigError, DataError
from arrive.schema.eta import P50, P90

__all__ = [
    "EvalInput",
    "Evaluation",
    "QuantileMetrics",
    "SegmentMetrics",
    "SegmentRow",
    "SideMetrics",
    "coverage_by_quantile",
    "evaluate",
    "mean_interval",
    "metrics_json",
    "quantile_key",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
Column: TypeAlias = npt.NDArray[Any] | pl.Series | Sequence[Any]
Z95: Final = 1.959963984540054
"""The two-sided 95 % quantile of the standard normal distribution."""
MISSING_SEGMENT: Final = "(missing)"
_SIDES: Final = ("model", "heuristic")


def mean_interval(values: npt.ArrayLike, z: float = Z95) -> tuple[float, float]:
    """The normal interval of the mean of ``values`` (the mean twice when fewer than two)."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean()) if array.size else math.nan
    if array.size < 2:
        return mean, mean
    half = z * float(array.std(ddof=1)) / math.sqrt(array.size)
    return mean - half, mean + half


def quantile_key(quantile: float) -> str:
    """The short name of a quantile used in metric keys: ``0.9 -> "p90"``, ``0.975 -> "p97.5"``."""
    return f"p{round(quantile * 100, 6):g}"


@dataclass(frozen=True)
class EvalInput:
    """The arrays one evaluation needs; every array has one entry per test order.

    Attributes:
        y_true_s: actual delivery durations, shape ``(n,)``.
        pred_s: the model's quantile predictions, shape ``(n, k)``; column ``j``
            predicts ``quantiles[j]``.
        heuristic_s: the heuristic's predictions of the same quantiles, shape ``(n, k)``.
        quantiles: the ``k`` quantile levels, distinct, in ``(0, 1)``, including 0.5 and
            0.9 (looked up by value, any order).
        created_at: order creation times, shape ``(n,)``: a NumPy ``datetime64`` array, a
            Polars ``Datetime`` series or a sequence of ``datetime``. Naive values are
            taken as UTC; aware ones are converted to UTC. Used for the hour of day.
        segments: named groupings to break the metrics down by (``"market"``,
            ``"store_history"``, ...), each an array of ``n`` labels. Null labels are
            grouped as ``"(missing)"``.
    """

    y_true_s: npt.ArrayLike
    pred_s: npt.ArrayLike
    heuristic_s: npt.ArrayLike
    quantiles: Sequence[float]
    created_at: Column
    segments: Mapping[str, Column] = field(default_factory=dict)


class QuantileMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """Scores of the predictions of one quantile.

    Attributes:
        quantile: the nominal level, e.g. 0.9.
        pinball_s: mean pinball loss in seconds.
        coverage: observed share of actuals at or below the prediction.
    """

    quantile: float
    pinball_s: float
    coverage: float


class SideMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """Overall scores of one predictor (the model or the heuristic).

    Attributes:
        n: number of rows scored.
        mae_s: mean absolute error of the P50 prediction, seconds.
        rmse_s: root mean squared error of the P50 prediction, seconds.
        quantiles: per-quantile scores, in increasing quantile order.
        late_rate: share of rows whose actual exceeds the P90 prediction.
        width_s: mean of P90 minus P50, seconds.
        crossings: rows where a higher quantile's prediction is below a lower one's.
        mae_low_s, mae_high_s: the 95 % normal interval of the MAE, seconds.
    """

    n: int
    mae_s: float
    rmse_s: float
    quantiles: tuple[QuantileMetrics, ...]
    late_rate: float
    width_s: float
    crossings: int
    mae_low_s: float = 0.0
    mae_high_s: float = 0.0

    def at(self, quantile: float) -> QuantileMetrics:
        """The scores of ``quantile``.

        Raises:
            ConfigError: the quantile was not evaluated.
        """
        for metrics in self.quantiles:
            if math.isclose(metrics.quantile, quantile, abs_tol=1e-9):
                return metrics
        raise ConfigError(f"quantile {quantile}: not evaluated")


class SegmentMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """Scores of one predictor on one segment value.

    Attributes:
        mae_s: MAE of the P50 prediction, seconds.
        coverage_p90: share of actuals at or below the P90 prediction.
        late_rate: share of actuals above the P90 prediction.
        mae_low_s, mae_high_s: the 95 % normal interval of the MAE, seconds.
    """

    mae_s: float
    coverage_p90: float
    late_rate: float
    mae_low_s: float = 0.0
    mae_high_s: float = 0.0


class SegmentRow(msgspec.Struct, frozen=True, kw_only=True):
    """The model's and the heuristic's scores on one segment value.

    Attributes:
        value: the segment label (hours are zero-padded: ``"07"``).
        n: rows with this label (always at least 1).
        model: the model's scores.
        heuristic: the heuristic's scores.
    """

    value: str
    n: int
    model: SegmentMetrics
    heuristic: SegmentMetrics


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    """The result of :func:`evaluate`; JSON-able through :meth:`to_dict`.

    Attributes:
        quantiles: the evaluated quantile levels, increasing.
        model: the model's overall scores.
        heuristic: the heuristic's overall scores.
        by_hour: scores per UTC hour of creation, for hours that have orders, in order
            (reports prefer a ``"local hour"`` segment when the caller gives one).
        segments: per segment name, scores per label, largest ``n`` first (ties by label).
    """

    quantiles: tuple[float, ...]
    model: SideMetrics
    heuristic: SideMetrics
    by_hour: tuple[SegmentRow, ...]
    segments: dict[str, tuple[SegmentRow, ...]]

    @property
    def mae_improvement(self) -> float | None:
        """Relative MAE reduction vs the heuristic (0.2 = 20 % lower); None if its MAE is 0."""
        if self.heuristic.mae_s == 0:
            return None
        return (self.heuristic.mae_s - self.model.mae_s) / self.heuristic.mae_s

    def to_dict(self) -> dict[str, Any]:
        """The whole result as JSON-able builtins (floats, ints, str, lists, dicts)."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


@dataclass(frozen=True)
class _Checked:
    """Validated inputs: columns sorted by quantile, hour of day derived."""

    y_true_s: FloatArray
    preds: dict[str, FloatArray]
    quantiles: tuple[float, ...]
    hour: npt.NDArray[np.int8]
    segments: dict[str, pl.Series]


def evaluate(data: EvalInput) -> Evaluation:
    """Score the model and the heuristic on the same test rows.

    Args:
        data: the actuals, both predictors' quantile predictions and the grouping labels.

    Returns:
        The overall, per-hour and per-segment scores of both predictors.

    Raises:
        DataError: no rows; arrays of different lengths or wrong shapes; a NaN or
            infinite actual or prediction (the message gives the row count and the
            first row); a missing creation time.
        ConfigError: quantiles not distinct, outside ``(0, 1)``, or without 0.5 and 0.9.
    """
    checked = _check(data)
    return Evaluation(
        quantiles=checked.quantiles,
        model=_side(checked.y_true_s, checked.preds["model"], checked.quantiles),
        heuristic=_side(checked.y_true_s, checked.preds["heuristic"], checked.quantiles),
        by_hour=tuple(sorted(_segment_rows(checked, _hour_labels(checked)), key=_value)),
        segments={
            name: _segment_rows(checked, labels) for name, labels in checked.segments.items()
        },
    )


def coverage_by_quantile(
    y_true_s: npt.ArrayLike, pred_s: npt.ArrayLike, quantiles: Sequence[float]
) -> dict[float, float]:
    """Observed coverage per nominal quantile, for a reliability plot.

    Args:
        y_true_s: actual durations, shape ``(n,)``.
        pred_s: predictions, shape ``(n, k)``; column ``j`` predicts ``quantiles[j]``.
        quantiles: the ``k`` nominal levels.

    Returns:
        ``{nominal: share of rows with y <= prediction}``, in increasing nominal order.

    Raises:
        DataError: shapes disagree, no rows, or a NaN / infinite value.
        ConfigError: quantiles not distinct or outside ``(0, 1)``.
    """
    y = _vector(y_true_s, "y_true_s")
    order, levels = _sorted_quantiles(quantiles)
    pred = _matrix(pred_s, "pred_s", len(y), len(levels))[:, order]
    return {q: float(np.mean(y <= pred[:, j])) for j, q in enumerate(levels)}


def metrics_json(evaluation: Evaluation) -> dict[str, float | int | None]:
    """The flat ``metrics.json`` record (seconds and shares; the caller adds ``n_train`` etc.).

    Keys: ``n_test``, ``mae_s`` (with its 95 % interval ``mae_ci95_low_s`` and
    ``mae_ci95_high_s``), ``rmse_s``, ``width_s``, ``late_rate``, ``crossings``,
    ``coverage_pXX`` and ``pinball_pXX`` for every quantile, the same prefixed with
    ``heuristic_``, and ``mae_improvement`` (relative, vs the heuristic; None when the
    heuristic's MAE is 0).
    """
    flat: dict[str, float | int | None] = {"n_test": evaluation.model.n}
    flat |= _flat_side(evaluation.model, "")
    flat |= _flat_side(evaluation.heuristic, "heuristic_")
    flat["mae_improvement"] = evaluation.mae_improvement
    return flat


def _flat_side(side: SideMetrics, prefix: str) -> dict[str, float | int | None]:
    flat: dict[str, float | int | None] = {
        f"{prefix}mae_s": side.mae_s,
        f"{prefix}mae_ci95_low_s": side.mae_low_s,
        f"{prefix}mae_ci95_high_s": side.mae_high_s,
        f"{prefix}rmse_s": side.rmse_s,
        f"{prefix}width_s": side.width_s,
        f"{prefix}late_rate": side.late_rate,
        f"{prefix}crossings": side.crossings,
    }
    for metrics in side.quantiles:
        flat[f"{prefix}coverage_{quantile_key(metrics.quantile)}"] = metrics.coverage
        flat[f"{prefix}pinball_{quantile_key(metrics.quantile)}"] = metrics.pinball_s
    return flat


# -- scoring -------------------------------------------------------------------------------


def _side(y: FloatArray, pred: FloatArray, quantiles: tuple[float, ...]) -> SideMetrics:
    p50, p90 = pred[:, quantiles.index(P50)], pred[:, quantiles.index(P90)]
    error = y - p50
    mae_low_s, mae_high_s = mean_interval(np.abs(error))
    return SideMetrics(
        n=len(y),
        mae_s=float(np.mean(np.abs(error))),
        mae_low_s=max(0.0, mae_low_s),
        mae_high_s=mae_high_s,
        rmse_s=float(np.sqrt(np.mean(error**2))),
        quantiles=tuple(_quantile(y, pred[:, j], q) for j, q in enumerate(quantiles)),
        late_rate=float(np.mean(y > p90)),
        width_s=float(np.mean(p90 - p50)),
        crossings=int(np.count_nonzero(np.any(np.diff(pred, axis=1) < 0, axis=1))),
    )


def _quantile(y: FloatArray, pred: FloatArray, quantile: float) -> QuantileMetrics:
    residual = y - pred
    loss = np.maximum(quantile * residual, (quantile - 1) * residual)
    return QuantileMetrics(
        quantile=quantile, pinball_s=float(np.mean(loss)), coverage=float(np.mean(y <= pred))
    )


def _segment_rows(checked: _Checked, labels: pl.Series) -> tuple[SegmentRow, ...]:
    columns = {"label": labels.fill_null(MISSING_SEGMENT)}
    for side in _SIDES:
        pred = checked.preds[side]
        columns[f"{side}_abs"] = pl.Series(np.abs(checked.y_true_s - _col(checked, pred, P50)))
        columns[f"{side}_late"] = pl.Series(checked.y_true_s > _col(checked, pred, P90))
    grouped = (
        pl.DataFrame(columns)
        .group_by("label")
        .agg(
            pl.len().alias("n"),
            pl.exclude("label").mean(),
            *(pl.col(f"{side}_abs").std().alias(f"{side}_sd") for side in _SIDES),
        )
        .sort(["n", "label"], descending=[True, False])
    )
    return tuple(_segment_row(row) for row in grouped.iter_rows(named=True))


def _hour_labels(checked: _Checked) -> pl.Series:
    return pl.Series(checked.hour).cast(pl.String).str.zfill(2)


def _value(row: SegmentRow) -> str:
    return row.value


def _col(checked: _Checked, pred: FloatArray, quantile: float) -> FloatArray:
    return pred[:, checked.quantiles.index(quantile)]


def _segment_row(row: dict[str, Any]) -> SegmentRow:
    sides = {side: _segment_metrics(row, side, int(row["n"])) for side in _SIDES}
    return SegmentRow(
        value=str(row["label"]), n=int(row["n"]), model=sides["model"], heuristic=sides["heuristic"]
    )


def _segment_metrics(row: dict[str, Any], side: str, n: int) -> SegmentMetrics:
    mae = float(row[f"{side}_abs"])
    half = Z95 * float(row[f"{side}_sd"] or 0.0) / math.sqrt(n)
    return SegmentMetrics(
        mae_s=mae,
        coverage_p90=1.0 - float(row[f"{side}_late"]),
        late_rate=float(row[f"{side}_late"]),
        mae_low_s=max(0.0, mae - half),  # an MAE is never negative
        mae_high_s=mae + half,
    )


# -- validation ----------------------------------------------------------------------------


def _check(data: EvalInput) -> _Checked:
    y = _vector(data.y_true_s, "y_true_s")
    order, levels = _sorted_quantiles(data.quantiles)
    _require_levels(levels)
    model = _matrix(data.pred_s, "pred_s", len(y), len(levels))[:, order]
    heuristic = _matrix(data.heuristic_s, "heuristic_s", len(y), len(levels))[:, order]
    return _Checked(
        y_true_s=y,
        preds={"model": model, "heuristic": heuristic},
        quantiles=levels,
        hour=_hours(data.created_at, len(y)),
        segments={name: _labels(name, values, len(y)) for name, values in data.segments.items()},
    )


def _vector(values: npt.ArrayLike, name: str) -> FloatArray:
    array = _floats(values, name)
    if array.ndim != 1:
        raise DataError(f"{name}: expected one value per row, got shape {array.shape}")
    if len(array) == 0:
        raise DataError(f"{name}: no rows to evaluate")
    _require_finite(array, name)
    return array


def _matrix(values: npt.ArrayLike, name: str, n: int, k: int) -> FloatArray:
    array = _floats(values, name)
    if array.shape != (n, k):
        raise DataError(f"{name}: expected shape ({n}, {k}) (rows, quantiles), got {array.shape}")
    _require_finite(array, name)
    return array


def _floats(values: npt.ArrayLike, name: str) -> FloatArray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: not numeric ({exc})") from exc


def _require_finite(array: FloatArray, name: str) -> None:
    bad_rows = ~np.isfinite(array).reshape(len(array), -1).all(axis=1)
    count = int(np.count_nonzero(bad_rows))
    if count:
        first = int(np.argmax(bad_rows))
        raise DataError(
            f"{name}: {count} of {len(array)} rows have a NaN or infinite value"
            f" (first: row {first})"
        )


def _sorted_quantiles(quantiles: Sequence[float]) -> tuple[npt.NDArray[np.intp], tuple[float, ...]]:
    levels = np.asarray(quantiles, dtype=np.float64)
    if levels.ndim != 1 or len(levels) == 0:
        raise ConfigError(f"quantiles: expected a non-empty list of levels, got {quantiles!r}")
    if not np.all((levels > 0) & (levels < 1)):
        raise ConfigError(f"quantiles: every level must be in (0, 1), got {list(levels)}")
    order = np.argsort(levels, kind="stable")
    if np.any(np.diff(levels[order]) <= 1e-9):
        raise ConfigError(f"quantiles: levels must be distinct, got {list(levels)}")
    return order, tuple(_snap(float(q)) for q in levels[order])


def _snap(quantile: float) -> float:
    """Round away float noise (``0.9000000001`` is 0.9) so levels can be looked up by value."""
    return round(quantile, 9)


def _require_levels(levels: tuple[float, ...]) -> None:
    for needed in (P50, P90):
        if needed not in levels:
            raise ConfigError(f"quantiles: {needed} is required, got {list(levels)}")


def _hours(created_at: Column, n: int) -> npt.NDArray[np.int8]:
    times = _series(created_at)
    if not isinstance(times.dtype, pl.Datetime):
        raise DataError(f"created_at: expected datetimes, got {times.dtype}")
    if len(times) != n:
        raise DataError(f"created_at: {len(times)} values for {n} rows")
    if times.null_count():
        raise DataError(f"created_at: {times.null_count()} of {n} rows have no creation time")
    if times.dtype.time_zone is not None:
        times = times.dt.convert_time_zone("UTC")
    return times.dt.hour().to_numpy().astype(np.int8)


def _labels(name: str, values: Column, n: int) -> pl.Series:
    labels = _series(values)
    if len(labels) != n:
        raise DataError(f"segments[{name!r}]: {len(labels)} labels for {n} rows")
    return labels.cast(pl.String)


def _series(values: Column) -> pl.Series:
    if isinstance(values, pl.Series):
        return values
    if isinstance(values, np.ndarray) and values.dtype == object:
        # Polars keeps object arrays opaque; a list lets it infer datetimes and strings.
        return pl.Series(values.tolist())
    return pl.Series(values)
