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
_PARTS = ("train", "valid", "calib", "test")


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


@dataclass(frozen=True)
class SplitFractions:
    """Shares of the orders in each held-out part; training gets the rest (the earliest).

    Attributes:
        test: the latest orders, scored once at the end.
        valid: the orders before the calibration window, for early stopping and selection.
        calib: the orders just before the test period, for calibrating the quantiles.
    """

    test: float = 0.15
    valid: float = 0.10
    calib: float = 0.10

    def __post_init__(self) -> None:
        for name in ("test", "valid", "calib"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name}_frac: expected a number in (0, 1), got {value!r}")
            if not 0.0 < value < 1.0:
                raise ConfigError(f"{name}_frac: must be in (0, 1), got {value}")
        if self.test + self.valid + self.calib >= 1.0:
            raise ConfigError(
                f"split fractions: test + valid + calib must be below 1 to leave orders for "
                f"training, got {self.test} + {self.valid} + {self.calib}"
            )


def make_split(
    created_at: pl.Series,
    kind: SplitKind = "time",
    *,
    fractions: SplitFractions | None = None,
    seed: int = 0,
) -> Split:
    """Split rows by creation time (``time``) or at random (``random``, 20 % test).

    Raises:
        DataError: fewer than ``MIN_ORDERS`` orders, or a part that would get no order.
        ConfigError: an unknown kind.
    """
    fractions = fractions or SplitFractions()
    n = len(created_at)
    if n < MIN_ORDERS:
        raise DataError(f"a {kind} split needs at least {MIN_ORDERS} delivered orders, got {n}")
    if kind == "time":
        order = created_at.arg_sort().to_numpy().astype(np.int64)
    elif kind == "random":
        order = np.random.default_rng(seed).permutation(n).astype(np.int64)
        fractions = SplitFractions(0.20, fractions.valid, fractions.calib)
    else:
        raise ConfigError(f"split: must be 'time' or 'random', got {kind!r}")
    held_out = fractions.test + fractions.valid + fractions.calib
    cuts = np.cumsum([1.0 - held_out, fractions.valid, fractions.calib]) * n
    parts = np.split(order, cuts.round().astype(int))
    empty = [name for name, part in zip(_PARTS, parts, strict=True) if part.size == 0]
    if empty:
        raise DataError(f"split: the {empty[0]} part gets no order of {n}; raise its fraction")
    return Split(kind, *parts)
