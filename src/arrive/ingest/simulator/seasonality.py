"""When customers order: the demand curve by hour of day, day of week and weather."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

WEEKDAY_DEMAND: Final = np.array([0.9, 0.9, 0.95, 1.0, 1.15, 1.15, 1.05])
"""Relative demand Monday (0) to Sunday (6)."""

WEATHER_DEMAND: Final[dict[str, float]] = {
    "clear": 1.0,
    "cloudy": 1.0,
    "fog": 1.05,
    "rain": 1.15,
    "storm": 1.25,
    "snow": 1.3,
}
"""Relative demand by weather condition: people stay in and order."""

_GRID: Final = np.arange(0.0, 24.0, 0.25) + 0.125


def _bump(hour: NDArray[np.float64], centre: float, width: float) -> NDArray[np.float64]:
    distance = np.abs(hour - centre)
    distance = np.minimum(distance, 24.0 - distance)  # the day wraps around midnight
    return np.exp(-0.5 * (distance / width) ** 2)


def _raw(hour: NDArray[np.float64]) -> NDArray[np.float64]:
    return (
        0.04
        + 0.35 * _bump(hour, 8.5, 1.2)
        + 1.6 * _bump(hour, 12.75, 1.1)
        + 0.3 * _bump(hour, 15.5, 2.0)
        + 2.2 * _bump(hour, 19.5, 1.6)
        + 0.25 * _bump(hour, 23.0, 1.5)
    )


_MEAN: Final = float(_raw(_GRID).mean())


def hourly_demand(hour: npt.ArrayLike) -> NDArray[np.float64]:
    """Relative order rate at an hour of the day (averages 1 over the day)."""
    return _raw(np.asarray(hour, dtype=np.float64)) / _MEAN
