"""Always-valid confidence sequences: intervals that may be looked at after every order.

A fixed-sample interval checked after every batch of orders and acted on the first time
it excludes zero errs far more often than its nominal level: each look is another
chance. A *confidence sequence* holds at every sample size at once,
``P(exists n: theta outside CS_n) <= alpha``, so a rollout may peek every minute.

This is the closed-form normal-mixture boundary (Robbins 1970), in its asymptotic form
for means with an estimated variance: Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas,
*Time-uniform central limit theory and asymptotic confidence sequences*
(arXiv:2103.06476), the boundary of Howard, Ramdas, McAuliffe & Sekhon, *Time-uniform,
nonparametric, nonasymptotic confidence sequences*, Ann. Statist. 49(2), 2021::

    estimate ± se * sqrt((1 + 1/(n rho²)) * log((1 + n rho²) / alpha²))

with ``se`` the usual standard error after ``n`` observations and ``rho`` the mixture
parameter, chosen so the sequence is tightest at ``tuned_n`` observations
(Waudby-Smith et al.'s choice). A two-sample difference uses the total ``n`` of both arms (their
randomised-experiment case). The stored docs list ``confseq`` (Howard et al.'s own
package): it builds C++ against Boost and is not maintained since 2023, for a formula
of two lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from arrive.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate and its always-valid bounds (``lower <= estimate <= upper``)."""

    estimate: float
    lower: float
    upper: float


def mixture_rho2(alpha: float, tuned_n: float) -> float:
    """The mixture parameter ``rho²`` that makes the sequence tightest at ``tuned_n``.

    Raises:
        ConfigError: ``alpha`` is not within (0, 1) or ``tuned_n`` is not positive.
    """
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha: must lie within (0, 1), got {alpha}")
    if not tuned_n > 0:
        raise ConfigError(f"tuned_n: must be > 0, got {tuned_n}")
    log_term = -2 * math.log(alpha)
    return (log_term + math.log(log_term + 1)) / tuned_n


def multiplier(n: float, alpha: float, tuned_n: float) -> float:
    """How many standard errors the sequence extends on each side after ``n`` observations
    (about 3.6 at ``tuned_n`` for ``alpha`` = 0.01, against 2.58 for a fixed sample)."""
    if n <= 0:
        return math.inf
    n_rho2 = n * mixture_rho2(alpha, tuned_n)
    return math.sqrt((1 + 1 / n_rho2) * math.log((1 + n_rho2) / alpha**2))


def sequence(estimate: float, se: float, n: float, alpha: float, tuned_n: float) -> Interval:
    """The two-sided ``1 - alpha`` confidence sequence of a mean-like ``estimate``.

    Args:
        estimate: the estimate after ``n`` observations.
        se: its standard error (``sd / sqrt(n)`` for a mean).
        n: observations so far (both arms' total for a difference of two means).
        alpha: the error allowed over every look, each side included.
        tuned_n: the sample size at which the sequence is tightest.
    """
    half = se * multiplier(n, alpha, tuned_n) if se > 0 else 0.0
    return Interval(estimate, estimate - half, estimate + half)
