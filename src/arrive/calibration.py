"""Calibration on a recent window held out from training.

The anchor (the quantile nearest 0.5) is shifted by a constant so that half of
the window's actuals fall at or below it: a point model trained for the mean
then predicts the median.

Each quantile above the anchor (the one nearest 0.5) is predicted as the
quantile below it plus a non-negative gap: ``p_q = p_prev + c_q * gap_q`` with
``gap_q = max(raw_q - raw_prev, 0)``. The scale ``c_q >= 0`` is chosen on a
recent window held out from training so that the share of actuals at or below
``p_q`` reaches ``q`` there, with the finite-sample correction of split
conformal prediction (normalised conformalised quantile regression). Because
every gap is non-negative, quantiles cannot cross, by construction. Quantiles
below the anchor are handled the same way downwards.

The window's orders can be weighted by recency (:func:`recency_weights`): a
weighted conformal quantile (non-exchangeable conformal prediction, Barber et
al. 2023) then follows a drift inside the window instead of averaging over it,
at the price of a smaller effective sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_EPS_S = 1.0  # a gap below one second is treated as one second when scaling


def recency_weights(n: int, half_life: float | None) -> npt.NDArray[np.float64]:
    """Weights of ``n`` orders in time order: 1 for the latest, halving every
    ``half_life * n`` orders back; all ones when ``half_life`` is None."""
    if half_life is None:
        return np.ones(n)
    age = (n - 1 - np.arange(n)) / max(half_life * n, 1e-9)
    return np.asarray(0.5**age, dtype=np.float64)


def weighted_conformal_quantile(
    scores: npt.NDArray[np.float64], level: float, weights: npt.NDArray[np.float64] | None = None
) -> float:
    """The smallest score whose weighted share (the next order counted with weight 1,
    as split conformal prediction does) reaches ``level``; the largest score if none does.

    With equal weights this is the ``ceil((n + 1) * level)``-th smallest score.
    """
    w = np.ones(scores.size) if weights is None else weights / weights.max()
    order = np.argsort(scores, kind="stable")
    share = np.cumsum(w[order]) / (w.sum() + 1.0)
    index = min(int(np.searchsorted(share, level - 1e-12)), scores.size - 1)
    return float(scores[order][index])


def conformal_scale(
    y: npt.NDArray[np.float64],
    base: npt.NDArray[np.float64],
    gap: npt.NDArray[np.float64],
    level: float,
    weights: npt.NDArray[np.float64] | None = None,
) -> float:
    """The smallest ``c >= 0`` with ``mean(y <= base + c * gap) >= level`` (conformal-corrected).

    Args:
        y: actuals of the calibration window.
        base: the prediction the gap is added to (the quantile below).
        gap: non-negative raw gaps.
        level: target coverage in (0, 1).
        weights: per-order weights (e.g. :func:`recency_weights`); equal when None.
    """
    scores = (y - base) / np.maximum(gap, _EPS_S)
    return max(weighted_conformal_quantile(scores, level, weights), 0.0)


def apply_scales(
    raw: npt.NDArray[np.float64],
    quantiles: tuple[float, ...],
    scales: dict[float, float],
    anchor_offset_s: float | npt.NDArray[np.float64] = 0.0,
) -> npt.NDArray[np.float64]:
    """Non-crossing predictions from raw per-quantile predictions (columns sorted by quantile)."""
    anchor = anchor_index(quantiles)
    out = np.empty_like(raw)
    out[:, anchor] = raw[:, anchor] + anchor_offset_s
    for j in range(anchor + 1, len(quantiles)):
        gap = np.maximum(raw[:, j] - raw[:, j - 1], 0.0)
        out[:, j] = out[:, j - 1] + scales.get(quantiles[j], 1.0) * gap
    for j in range(anchor - 1, -1, -1):
        gap = np.maximum(raw[:, j + 1] - raw[:, j], 0.0)
        out[:, j] = out[:, j + 1] - scales.get(quantiles[j], 1.0) * gap
    return out


Window = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]


def fit_calibration(
    windows: Sequence[Window],
    quantiles: tuple[float, ...],
    *,
    calibrate_anchor: bool = True,
    half_life: float | None = None,
) -> tuple[float, dict[float, float]]:
    """The anchor shift and the scales from one or more held-out windows, oldest first.

    Each window is ``(raw, y)``: raw predictions of a model fitted on the orders before
    the window, and the window's actuals. The anchor shift is the last window's (that of
    the model that will serve); the scales are fitted on every window pooled, each
    window's residuals taken around its own model's shifted anchor. With two windows,
    e.g. the first model's validation window and the refitted model's calibration
    window, the scales see twice the orders over twice the time, at the same distance
    from each model's training data as the test period will be.

    Args:
        windows: ``(raw, y)`` per window, in time order.
        quantiles: the model's quantiles (raw columns in this order).
        calibrate_anchor: shift the anchor; when False the shift is 0.
        half_life: recency weights over the pooled orders (see :func:`recency_weights`).
    """
    sizes = [len(y) for _, y in windows]
    weights = None if half_life is None else recency_weights(sum(sizes), half_life)
    parts = [None] * len(sizes) if weights is None else np.split(weights, np.cumsum(sizes)[:-1])
    offsets = [
        fit_anchor_offset(raw, y, quantiles, w) if calibrate_anchor else 0.0
        for (raw, y), w in zip(windows, parts, strict=True)
    ]
    raw = np.vstack([raw for raw, _ in windows])
    y = np.concatenate([y for _, y in windows])
    shift = np.concatenate([np.full(len(y), o) for (_, y), o in zip(windows, offsets, strict=True)])
    return offsets[-1], fit_scales(raw, y, quantiles, shift, weights)


def fit_anchor_offset(
    raw: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    quantiles: tuple[float, ...],
    weights: npt.NDArray[np.float64] | None = None,
) -> float:
    """The shift that makes the anchor's (weighted) coverage on the window equal its quantile."""
    residual = y - raw[:, anchor_index(quantiles)]
    level = quantiles[anchor_index(quantiles)]
    if weights is None:
        return float(np.quantile(residual, level))
    order = np.argsort(residual, kind="stable")
    share = np.cumsum(weights[order]) / weights.sum()
    return float(residual[order][min(int(np.searchsorted(share, level)), residual.size - 1)])


def fit_scales(
    raw: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    quantiles: tuple[float, ...],
    anchor_offset_s: float | npt.NDArray[np.float64] = 0.0,
    weights: npt.NDArray[np.float64] | None = None,
) -> dict[float, float]:
    """Scales for every non-anchor quantile, fitted outward from the anchor."""
    anchor = anchor_index(quantiles)
    scales: dict[float, float] = {}
    for j in [*range(anchor + 1, len(quantiles)), *range(anchor - 1, -1, -1)]:
        current = apply_scales(raw, quantiles, scales, anchor_offset_s)
        if j > anchor:
            base, gap = current[:, j - 1], np.maximum(raw[:, j] - raw[:, j - 1], 0.0)
            scales[quantiles[j]] = conformal_scale(y, base, gap, quantiles[j], weights)
        else:
            base, gap = current[:, j + 1], np.maximum(raw[:, j + 1] - raw[:, j], 0.0)
            scales[quantiles[j]] = conformal_scale(-y, -base, gap, 1.0 - quantiles[j], weights)
    return scales


def anchor_index(quantiles: tuple[float, ...]) -> int:
    """Index of the quantile nearest the median: the one predicted directly."""
    return int(np.argmin([abs(q - 0.5) for q in quantiles]))
