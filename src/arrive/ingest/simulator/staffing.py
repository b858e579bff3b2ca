"""When couriers work: how many each market needs by hour, and their shifts.

A market wants, at each hour, the couriers its orders keep busy (Little's law:
order rate × busy hours per order) at :data:`TARGET_UTILISATION`, plus a
square-root safety margin and a floor: small fleets need proportionally more
slack to keep waits short. Shifts last :data:`SHIFT_H` hours and are centred
on hours drawn so that the fleet on shift follows that target; the draw is a
deconvolution (Richardson-Lucy), since the fleet on shift is the centres
smoothed over a shift's length.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from arrive.ingest.simulator.seasonality import hourly_demand

_F = NDArray[np.float64]
_I = NDArray[np.int64]

BUSY_H_PER_ORDER: Final = 0.53
TARGET_UTILISATION: Final = 0.78
SAFETY_COURIERS: Final = 1.5  # × √(busy couriers)
MIN_ON_SHIFT: Final = 2.0
WORK_PROBABILITY: Final = 0.8
SHIFT_H: Final = (2.0, 5.0)
REST_S: Final = 3 * 3600.0
WORKDAY_START_H: Final = 6.0
_GRID_H: Final = WORKDAY_START_H + np.arange(0.0, 24.0, 0.25) + 0.125
_DECONVOLUTION_STEPS: Final = 100


def wanted_on_shift(orders_per_day: float) -> _F:
    """Couriers a market wants on shift at each quarter hour of a working day (from 06:00)."""
    busy = orders_per_day * hourly_demand(_GRID_H % 24.0) / 24.0 * BUSY_H_PER_ORDER
    return busy / TARGET_UTILISATION + SAFETY_COURIERS * np.sqrt(busy) + MIN_ON_SHIFT


def couriers_needed(orders_per_day: float) -> int:
    """Couriers a market needs so that enough of them work each day."""
    courier_hours = float(wanted_on_shift(orders_per_day).sum()) * 0.25
    shifts = courier_hours / float(np.mean(SHIFT_H))
    return max(3, int(np.ceil(shifts / WORK_PROBABILITY)))


def shift_times(
    orders_per_day: float, couriers: int, days: int, horizon_s: float, rng: np.random.Generator
) -> tuple[_F, _F]:
    """Start and end (seconds) of each courier's shift on each working day (NaN: not working).

    Working days run from 06:00, the quietest hour, so that night shifts belong
    to the evening before; the day before the first one supplies the first night.
    Shape: (couriers, days + 1).
    """
    weight = _centre_weights(wanted_on_shift(orders_per_day))
    shape = (couriers, days + 1)
    hour = _GRID_H[rng.choice(len(_GRID_H), shape, p=weight)] + rng.uniform(-0.125, 0.125, shape)
    centre_s = (np.arange(-1, days) * 24.0 + hour) * 3600.0
    half_s = rng.uniform(*SHIFT_H, shape) * 1800.0
    start, end = np.maximum(0.0, centre_s - half_s), centre_s + half_s
    works = (rng.random(shape) < WORK_PROBABILITY) & (end > 0.0) & (start < horizon_s)
    start, end = np.where(works, start, np.nan), np.where(works, end, np.nan)
    # a shift too soon after the day before's (which may run past its end) is not worked
    clash = np.zeros_like(works)
    clash[:, 1:] = start[:, 1:] < end[:, :-1] + REST_S
    start[clash], end[clash] = np.nan, np.nan
    return start, end


def _coverage_matrix() -> _F:
    """P(a shift centred on quarter hour j covers quarter hour i)."""
    lengths = np.linspace(*SHIFT_H, 9)
    offset = (_GRID_H[:, None, None] - _GRID_H[None, :, None] + 12.0) % 24.0 - 12.0
    return np.asarray((np.abs(offset) < lengths[None, None, :] / 2.0).mean(axis=2))


def _centre_weights(target: _F) -> _F:
    """Probabilities of shift centres whose coverage is proportional to ``target``."""
    cover = _coverage_matrix()
    weight = target / target.sum()
    for _ in range(_DECONVOLUTION_STEPS):
        weight = weight * (cover.T @ (target / (cover @ weight))) / cover.sum(axis=0)
    return np.asarray(weight / weight.sum(), dtype=np.float64)
