"""Trailing event-time aggregates, declared once and computed both ways.

For a query at time ``t`` and a window ``w``, an aggregate covers the
observations of the same key with ``t - w <= time < t``: the current instant is
excluded, so nothing at or after the order's creation leaks in.

* Offline (:func:`trailing_stats`): per-key cumulative sums read with strict
  as-of joins, vectorised.
* Online (:class:`WindowState`): the same sums kept per key and window, updated
  per observation and expired as event time advances.

A :class:`Trailing` declares one family of such features (the stream it reads, the
entity it is keyed by, windows, statistics, names) and both paths take their
windows, statistics and names from it, so the two cannot drift.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import polars as pl

Stat = Literal["count", "mean", "std", "sum"]
Stream = Literal["delivery", "prep", "created", "open"]
"""Observation streams derived from order lifecycles (see :mod:`arrive.features.online`):
``delivery`` (delivery seconds, at delivery), ``prep`` (prep seconds, at food ready),
``created`` (1 at creation), ``open`` (+1 at creation, -1 at the first terminal event)."""

_CUM = ("_n", "_s", "_ss")


@dataclass(frozen=True)
class Trailing:
    """A family of trailing-window features.

    Attributes:
        stream: which observations it aggregates.
        key: the order field that keys it (``store_id``, ``market_id``, ``courier_id``,
            ``day`` or ``market_day``); its entity kind is the name without ``_id``.
        windows: label → length; None means all history before ``t``.
        stats: statistics per window.
        prefix: names are ``{prefix}_{stat}_{label}`` unless renamed.
        rename: raw name → feature name.
    """

    stream: Stream
    key: str
    windows: Mapping[str, timedelta | None]
    prefix: str
    stats: tuple[Stat, ...] = ("count", "mean")
    rename: Mapping[str, str] = field(default_factory=dict)

    @property
    def entity(self) -> str:
        return self.key.removesuffix("_id")

    def columns(self) -> dict[tuple[str, Stat], str]:
        """(window label, stat) → feature name."""
        out: dict[tuple[str, Stat], str] = {}
        for label in self.windows:
            for stat in self.stats:
                raw = f"{self.prefix}_{stat}_{label}"
                out[(label, stat)] = self.rename.get(raw, raw)
        return out

    def offline(self, queries: pl.DataFrame, observations: pl.DataFrame) -> pl.DataFrame:
        """:func:`trailing_stats` with this declaration; ``queries`` keyed by :attr:`key`."""
        frame = trailing_stats(
            queries,
            observations,
            key=self.key,
            windows=dict(self.windows),
            prefix=self.prefix,
            stats=self.stats,
        )
        return frame.rename({k: v for k, v in self.rename.items() if k in frame.columns})


def trailing_stats(
    queries: pl.DataFrame,
    observations: pl.DataFrame,
    *,
    key: str,
    windows: dict[str, timedelta | None],
    prefix: str,
    stats: tuple[Stat, ...] = ("count", "mean"),
) -> pl.DataFrame:
    """Count / mean / std / sum of ``value`` per key over trailing windows.

    Args:
        queries: ``_row``, ``key`` and ``t`` (UTC) per row.
        observations: ``key``, ``time`` and ``value``; rows with a null key, time or value
            are ignored.
        windows: label → length; None means all history before ``t``.
        prefix: column prefix, e.g. ``"store_delivery"`` gives ``store_delivery_mean_7d``.
        stats: any of ``count``, ``mean``, ``std``, ``sum``.

    Returns:
        ``_row`` then one column per window and stat, in ``queries`` order. A mean
        or std over an empty window is null, a count or sum is 0.
    """
    observations = observations.with_columns(pl.col("time").cast(queries.schema["t"]))
    cum = _cumulative(observations.drop_nulls(["time", "value", key]), key)
    now = _as_of(queries, cum, key, timedelta(0))
    out = queries.select("_row")
    for label, length in windows.items():
        past = _as_of(queries, cum, key, length)
        delta = now - past
        out = out.with_columns(_stats(delta, f"{prefix}_{{}}_{label}", stats))
    return out


def _cumulative(observations: pl.DataFrame, key: str) -> pl.DataFrame:
    value = pl.col("value").cast(pl.Float64)
    return observations.sort("time", key).select(
        key,
        "time",
        _n=pl.int_range(1, pl.len() + 1).over(key).cast(pl.Float64),
        _s=value.cum_sum().over(key),
        _ss=(value * value).cum_sum().over(key),
    )


def _as_of(
    queries: pl.DataFrame, cum: pl.DataFrame, key: str, offset: timedelta | None
) -> pl.DataFrame:
    """Cumulative sums of the last observation strictly before ``t - offset``, in query order."""
    if offset is None:
        return pl.DataFrame({c: [0.0] * len(queries) for c in _CUM})
    left = queries.select("_row", key, _at=pl.col("t") - offset).sort("_at")
    joined = left.join_asof(
        cum.rename({"time": "_at"}),
        on="_at",
        by=key,
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    return joined.sort("_row").select(pl.col(c).fill_null(0.0) for c in _CUM)


def _stats(delta: pl.DataFrame, name: str, stats: tuple[Stat, ...]) -> list[pl.Series]:
    n, s, ss = (delta.get_column(c) for c in _CUM)
    mean = (s / n).fill_nan(None)
    builders = {
        "count": lambda: n.cast(pl.Int64),
        "sum": lambda: s,
        "mean": lambda: mean,
        "std": lambda: ((ss / n - mean * mean).clip(lower_bound=0.0).sqrt()).fill_nan(None),
    }
    return [builders[stat]().alias(name.format(stat)) for stat in stats]


class WindowState:
    """Online twin of one key's window: observations with ``time >= t - length``.

    Observations may arrive slightly out of order (they are inserted in time
    order); :meth:`expire` drops those that left the window.

    Args:
        length_us: window length in µs; None keeps all history.
    """

    __slots__ = ("head", "length_us", "n", "s", "ss", "times", "values")

    def __init__(self, length_us: int | None) -> None:
        self.length_us = length_us
        self.times: list[int] = []
        self.values: list[float] = []
        self.head = 0
        self.n = 0
        self.s = 0.0
        self.ss = 0.0

    def add(self, time_us: int, value: float) -> None:
        """Count one observation (the caller checks it is still inside the window)."""
        self.n += 1
        self.s += value
        self.ss += value * value
        if self.length_us is None:
            return
        if not self.times or time_us >= self.times[-1]:
            self.times.append(time_us)
            self.values.append(value)
            return
        at = bisect.bisect_right(self.times, time_us, lo=self.head)
        self.times.insert(at, time_us)
        self.values.insert(at, value)

    def expire(self, now_us: int) -> bool:
        """Drop observations older than ``now_us - length``; True when any was dropped."""
        if self.length_us is None:
            return False
        cutoff = now_us - self.length_us
        start = self.head
        while self.head < len(self.times) and self.times[self.head] < cutoff:
            value = self.values[self.head]
            self.n -= 1
            self.s -= value
            self.ss -= value * value
            self.head += 1
        if self.head > 512 and self.head * 2 > len(self.times):
            del self.times[: self.head], self.values[: self.head]
            self.head = 0
        if self.n == 0:  # an empty window sums to exactly zero, whatever rounding left behind
            self.s = self.ss = 0.0
        return self.head != start

    def stat(self, stat: Stat) -> float | None:
        """The statistic now (None for a mean or std of an empty window)."""
        if stat == "count":
            return float(self.n)
        if stat == "sum":
            return self.s
        if self.n == 0:
            return None
        mean = self.s / self.n
        if stat == "mean":
            return mean
        return math.sqrt(max(self.ss / self.n - mean * mean, 0.0))

    def to_state(self) -> WindowSnapshot:
        """A msgpack-ready snapshot (for checkpoints)."""
        return (self.times[self.head :], self.values[self.head :], self.n, self.s, self.ss)

    @classmethod
    def from_state(cls, length_us: int | None, state: WindowSnapshot) -> WindowState:
        """The window :meth:`to_state` described."""
        window = cls(length_us)
        window.times, window.values, window.n, window.s, window.ss = state
        return window


WindowSnapshot = tuple[list[int], list[float], int, float, float]
