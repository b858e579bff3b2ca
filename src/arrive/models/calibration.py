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
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

_EPS_S = 1.0  # a gap below one second is treated as one second when scaling


def conformal_scale(
    y: npt.NDArray[np.float64],
    base: npt.NDArray[np.float64],
    gap: npt.NDArray[np.float64],
    level: float,
) -> float:
    """The smallest ``c >= 0`` with ``mean(y <= base + c * gap) >= level`` (conformal-corrected).

    Args:
        y: actuals of the calibration window.
        base: the prediction the gap is added to (the quantile below).
        gap: non-negative raw gaps.
        level: target coverage in (0, 1).
    """
    scores = (y - base) / np.maximum(gap, _EPS_S)
    n = scores.size
    rank = min(math.ceil((n + 1) * level), n)
    return max(float(np.partition(scores, rank - 1)[rank - 1]), 0.0)


def apply_scales(
    raw: npt.NDArray[np.float64],
    quantiles: tuple[float, ...],
    scales: dict[float, float],
    anchor_offset_s: float = 0.0,
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


def fit_anchor_offset(
    raw: npt.NDArray[np.float64], y: npt.NDArray[np.float64], quantiles: tuple[float, ...]
) -> float:
    """The shift that makes the anchor's coverage on the window equal its quantile."""
    residual = y - raw[:, anchor_index(quantiles)]
    return float(np.quantile(residual, quantiles[anchor_index(quantiles)]))


def fit_scales(
    raw: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    quantiles: tuple[float, ...],
    anchor_offset_s: float = 0.0,
) -> dict[float, float]:
    """Scales for every non-anchor quantile, fitted outward from the anchor."""
    anchor = anchor_index(quantiles)
    scales: dict[float, float] = {}
    for j in [*range(anchor + 1, len(quantiles)), *range(anchor - 1, -1, -1)]:
        current = apply_scales(raw, quantiles, scales, anchor_offset_s)
        if j > anchor:
            base, gap = current[:, j - 1], np.maximum(raw[:, j] - raw[:, j - 1], 0.0)
            scales[quantiles[j]] = conformal_scale(y, base, gap, quantiles[j])
        else:
            base, gap = current[:, j + 1], np.maximum(raw[:, j + 1] - raw[:, j], 0.0)
            scales[quantiles[j]] = conformal_scale(-y, -base, gap, 1.0 - quantiles[j])
    return scales


def anchor_index(quantiles: tuple[float, ...]) -> int:
    """Index of the quantile nearest the median: the one predicted directly."""
    return int(np.argmin([abs(q - 0.5) for q in quantiles]))
