"""Splitting orders for training, early stopping, calibration and testing.

The default is by time: train on the earliest orders, early-stop on the next
slice, calibrate P90 on the slice after, test on the latest — as the model will
be used. A random split exists only to compare with published work on the same
data; it lets the future leak into training, and every report labels it.

The calibration window is either a share of the orders or a time span of whole
days just before the test period (``calib_days``). Demand, kitchens and roads
follow a daily cycle; a share of the orders can be a few hours (under a day on a
one-week marketplace) and then judges the P90 on one part of the cycle. A span of
``N × 24 h`` holds every hour of the day ``N`` times, as the days the model will
serve do. ``"auto"`` takes whole days in proportion to the history: a seventh of
the days before the test period, at least 1 and at most 7 (a week, every weekday
once, when the history spans 7 weeks or more).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import ConfigError, DataError

SplitKind = Literal["time", "random"]
CalibDays = int | Literal["auto"] | None
IntArray = npt.NDArray[np.int64]
MIN_ORDERS = 500
MAX_AUTO_CALIB_DAYS = 7
_PARTS = ("train", "valid", "calib", "test")


@dataclass(frozen=True)
class Split:
    """Row indices of each part (disjoint, together all rows)."""

    kind: SplitKind
    train: IntArray
    valid: IntArray
    calib: IntArray
    test: IntArray
    calib_days: int | None = None
    """The calibration window's span in whole days, or None: a share of the orders."""

    @property
    def label(self) -> str:
        if self.kind == "time":
            window = "" if self.calib_days is None else f" ({self.calib_days} d)"
            return (
                f"time-based (train on earlier orders, calibrate on the next{window}, "
                "test on the latest)"
            )
        return "random 80/20 — for comparison with published work only; leaks the future"


@dataclass(frozen=True)
class SplitFractions:
    """Shares of the orders in each held-out part; training gets the rest (the earliest).

    Attributes:
        test: the latest orders, scored once at the end.
        valid: the orders before the calibration window, for early stopping and selection.
        calib: the orders just before the test period, for calibrating the quantiles.
        calib_days: instead of ``calib``, the calibration window is the orders of the last
            ``calib_days`` × 24 h before the test period (time splits only); ``"auto"``:
            a seventh of the days before the test period, 1 to 7 (see the module
            docstring), the default. None: the share ``calib``.
        test_days: instead of ``test``, the test period is the orders of the data's last
            ``test_days`` × 24 h (time splits only; e.g. 1 for a daily retrain, whose
            comparison with production uses the newest day). None: the share ``test``.
    """

    test: float = 0.15
    valid: float = 0.10
    calib: float = 0.10
    calib_days: CalibDays = "auto"
    test_days: int | None = None

    def __post_init__(self) -> None:
        if self.test_days is not None and (type(self.test_days) is not int or self.test_days < 1):
            raise ConfigError(
                f"test_days: expected a whole number of days >= 1, got {self.test_days!r}"
            )
        days = self.calib_days
        if days is not None and days != "auto" and (type(days) is not int or days < 1):
            raise ConfigError(
                f"calib_days: expected a whole number of days >= 1 or 'auto', got {days!r}"
            )
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

    On a time split the calibration window is ``fractions.calib_days`` whole days before
    the test period (the default, ``"auto"``), or the share ``fractions.calib`` when that
    is None; a random split always uses the share.

    Raises:
        DataError: fewer than ``MIN_ORDERS`` orders, a part that would get no order, or a
            calibration window of whole days with no order or that leaves none for training.
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
    if kind == "time" and fractions.test_days is not None:
        fractions = _with_test_days(created_at.gather(order), fractions)
    if kind == "time" and fractions.calib_days is not None:
        return _split_by_days(created_at, order, fractions)
    held_out = fractions.test + fractions.valid + fractions.calib
    cuts = np.cumsum([1.0 - held_out, fractions.valid, fractions.calib]) * n
    train, valid, calib, test = _checked(np.split(order, cuts.round().astype(int)), n)
    return Split(kind, train, valid, calib, test)


def _with_test_days(times: pl.Series, fractions: SplitFractions) -> SplitFractions:
    """``fractions`` with the share ``test`` of the orders in the last ``test_days`` × 24 h
    of ``times`` (in time order).

    Raises:
        DataError: those days leave too few orders before them for the other parts.
    """
    days = fractions.test_days
    assert days is not None
    n = len(times)
    start = times[n - 1] - timedelta(days=days)
    share = (n - int(times.search_sorted(start, side="right"))) / n
    if share + fractions.valid + fractions.calib >= 1.0:
        raise DataError(
            f"test_days: the last {days} days hold {share:.0%} of the orders and leave too "
            "few before them for training, validation and calibration; lower test_days"
        )
    return replace(fractions, test=share, test_days=None)


def _checked(parts: list[IntArray], n: int) -> list[IntArray]:
    empty = [name for name, part in zip(_PARTS, parts, strict=True) if part.size == 0]
    if empty:
        raise DataError(f"split: the {empty[0]} part gets no order of {n}; raise its fraction")
    return parts


def _split_by_days(created_at: pl.Series, order: IntArray, fractions: SplitFractions) -> Split:
    """Test: the latest share; calibration: the whole days before it; validation: the share
    before that; training: the rest."""
    n = order.size
    before_test = n - round(fractions.test * n)
    times = created_at.gather(order)
    test_start, first = times[before_test], times[0]
    days = fractions.calib_days
    if days == "auto":
        days = auto_calib_days((test_start - first).total_seconds() / 86_400)
        if days is None:  # under two days of history: no whole day to spare
            return make_split(created_at, fractions=_share_fractions(fractions))
    assert isinstance(days, int)
    window_start = test_start - timedelta(days=days)
    calib_start = int(times.head(before_test).search_sorted(window_start, side="left"))
    if calib_start == before_test:
        raise DataError(f"calib_days: no order in the {days} days before the test period")
    valid_start = calib_start - round(fractions.valid * n)
    if valid_start <= 0:
        raise DataError(
            f"calib_days: the {days}-day calibration window leaves {calib_start} orders "
            "before it, none for training after validation; lower calib_days"
        )
    cuts = [valid_start, calib_start, before_test]
    train, valid, calib, test = _checked(np.split(order, cuts), n)
    return Split("time", train, valid, calib, test, calib_days=days)


def auto_calib_days(history_days: float) -> int | None:
    """Whole days of calibration for ``history_days`` of orders before the test period: a
    seventh of them, 1 to 7; None under two days."""
    if history_days < 2.0:
        return None
    return min(MAX_AUTO_CALIB_DAYS, max(1, math.floor(history_days / 7)))


def _share_fractions(fractions: SplitFractions) -> SplitFractions:
    return SplitFractions(fractions.test, fractions.valid, fractions.calib, calib_days=None)
