"""Road traffic per market and hour: the congestion profile of :mod:`.truth` with noise."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from arrive.ingest.simulator import truth

_F = NDArray[np.float64]
_I = NDArray[np.int64]

HOURLY_NOISE_SIGMA = 0.15


@dataclasses.dataclass(frozen=True)
class Traffic:
    """Congestion share (see :func:`truth.congestion`) per market and hour since the start."""

    congestion_by_hour: _F  # shape (markets, hours)

    def congestion(self, market: _I, time_s: _F) -> _F:
        """Congestion in ``market`` at ``time_s`` (constant within each hour)."""
        hour = np.minimum((time_s // 3600).astype(np.int64), self.congestion_by_hour.shape[1] - 1)
        return np.asarray(self.congestion_by_hour[market, hour], dtype=np.float64)


def simulate_traffic(
    start: date, rush_strength: _F, horizon_s: float, rng: np.random.Generator
) -> Traffic:
    """Hourly congestion covering [0, ``horizon_s``] for markets with ``rush_strength``."""
    hours = int(np.ceil(horizon_s / 3600.0))
    index = np.arange(hours)
    weekday = np.array([(start + timedelta(days=int(d))).weekday() for d in range(hours // 24 + 1)])
    weekend = weekday[index // 24] >= 5
    noise = np.exp(rng.normal(0.0, HOURLY_NOISE_SIGMA, (len(rush_strength), hours)))
    table = truth.congestion((index % 24) + 0.5, rush_strength[:, None], weekend[None, :], noise)
    return Traffic(table)
