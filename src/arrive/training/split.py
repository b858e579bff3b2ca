"""Splitting orders for training, early stopping, calibration and testing.

The default is by time: train on the earliest orders, early-stop on the next
slice, calibrate P90 on the slice after, test on the latest — as the model will
be used. A random split exists only to compare with published work on the same
data; it lets the future leak into training, and every report labels it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import ConfigError, DataError

SplitKind = Literal["time", "random"]
IntArray = npt.NDArray[np.int64]
MIN_ORDERS = 500


@dataclass(frozen=True)
class Split:
    """Row indices of each part (disjoint, together all rows)."""

    kind: SplitKind
    train: IntArray
    valid: IntArray
    calib: IntArray
    test: IntArray

    @property
    def label(self) -> str:
        if self.kind == "time":
            return "time-based (train on earlier orders, calibrate on the next, test on the latest)"
        return "random 80/20 — for comparison with published work only; leaks the future"


def make_split(
    created_at: pl.Series,
    kind: SplitKind = "time",
    *,
    test_frac: float = 0.15,
    calib_frac: float = 0.10,
    valid_frac: float = 0.10,
    seed: int = 0,
) -> Split:
    """Split rows by creation time (``time``) or at random (``random``, 20 % test).

    Raises:
        DataError: fewer than ``MIN_ORDERS`` orders.
        ConfigError: an unknown kind or fractions that leave no training data.
    """
    n = len(created_at)
    if n < MIN_ORDERS:
        raise DataError(f"a {kind} split needs at least {MIN_ORDERS} delivered orders, got {n}")
    if kind == "time":
        order = created_at.arg_sort().to_numpy().astype(np.int64)
    elif kind == "random":
        order = np.random.default_rng(seed).permutation(n).astype(np.int64)
        test_frac = 0.20
    else:
        raise ConfigError(f"split: must be 'time' or 'random', got {kind!r}")
    if test_frac + calib_frac + valid_frac >= 0.8:
        raise ConfigError("split fractions leave less than 20 % of the orders for training")
    cuts = np.cumsum([1.0 - test_frac - calib_frac - valid_frac, valid_frac, calib_frac]) * n
    train, valid, calib, test = np.split(order, cuts.round().astype(int))
    return Split(kind, train, valid, calib, test)
