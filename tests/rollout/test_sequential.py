"""The confidence sequence is always valid: peeking after every batch of observations
does not raise its error rate above alpha, where a fixed-sample interval's does."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from arrive.errors import ConfigError
from arrive.rollout.sequential import multiplier, sequence

Z_99 = 2.5758293035489004  # the two-sided fixed-sample 99 % quantile
ALPHA = 0.01


def _ever_excludes_the_mean(
    mult: Callable[[int], float], streams: int = 2000, length: int = 2000
) -> float:
    """Share of seeded skewed streams (exponential, mean 1) whose interval, looked at after
    every 10 observations from the 100th, ever excludes the true mean."""
    rng = np.random.default_rng(20261202)
    x = rng.exponential(1.0, (streams, length))
    n = np.arange(1, length + 1)
    mean = np.cumsum(x, axis=1) / n
    var = (np.cumsum(x * x, axis=1) - n * mean**2) / np.maximum(n - 1, 1)
    looks = n[99::10]
    se = np.sqrt(var[:, looks - 1] / looks)
    half = se * np.array([mult(int(k)) for k in looks])
    outside = np.abs(mean[:, looks - 1] - 1.0) > half
    return float(outside.any(axis=1).mean())


def test_under_the_null_peeking_keeps_the_error_below_alpha() -> None:
    rate = _ever_excludes_the_mean(lambda k: multiplier(k, ALPHA, tuned_n=1000))
    assert rate <= ALPHA


def test_a_fixed_sample_interval_peeked_at_the_same_looks_errs_far_more() -> None:
    rate = _ever_excludes_the_mean(lambda _: Z_99)
    assert rate > 3 * ALPHA


def test_the_sequence_is_tightest_near_the_sample_it_was_tuned_for() -> None:
    at_tuned = multiplier(1000, ALPHA, tuned_n=1000)
    assert at_tuned < multiplier(1000, ALPHA, tuned_n=250)
    assert at_tuned < multiplier(1000, ALPHA, tuned_n=4000)
    assert Z_99 < at_tuned < 4.0


def test_a_real_difference_is_found_and_bounds_hold_the_estimate() -> None:
    interval = sequence(0.2, se=1 / math.sqrt(2000), n=2000, alpha=ALPHA, tuned_n=1000)
    assert 0 < interval.lower < 0.2 < interval.upper
    assert sequence(0.3, 0.0, 10, ALPHA, 1000).lower == 0.3


@pytest.mark.parametrize(("alpha", "tuned_n"), [(0.0, 1000), (1.0, 1000), (0.05, 0)])
def test_bad_parameters_are_refused(alpha: float, tuned_n: float) -> None:
    with pytest.raises(ConfigError, match=r"^(alpha|tuned_n): "):
        multiplier(10, alpha, tuned_n)
