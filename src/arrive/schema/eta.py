"""The ETA contract: the quantiles every answer gives.

An answer is a P50 (the median arrival) and a P90 (the promise shown to users); a
model or heuristic may predict more quantiles, but never fewer.
"""

from __future__ import annotations

from typing import Final

from arrive.errors import ConfigError

P50: Final = 0.5
P90: Final = 0.9


def quantile_index(quantiles: tuple[float, ...], q: float, what: str) -> int:
    """Index of ``q`` in ``quantiles``; ConfigError naming ``what`` when absent."""
    for index, value in enumerate(quantiles):
        if abs(value - q) < 1e-9:
            return index
    raise ConfigError(f"{what}: predicts quantiles {list(quantiles)}, the service needs {q}")
