"""Trailing event-time aggregates, declared once and computed both ways.

For a query at time ``t`` and a window ``w``, an aggregate covers the
observations of the same key with ``t - w <= time < t``: the current instant is
excluded, so nothing at or after the order's creation leaks in.

* Offline (:func:`trailing_stats`, :class:`SumsBefore`): per-key cumulative sums
  read as of ``t`` and ``t - w`` (strictly before) by binary searches in NumPy, the
  queries and observations sorted once per build whatever the number of windows.
* Online (:class:`Observations`): the same sums kept per key, exactly (in
  integers), updated per observation and expired as event time advances.

A :class:`Trailing` declares one family of such features (the stream it reads, the
entity it is keyed by, windows, statistics, names) and both paths take their
windows, statistics and names from it, so the two cannot drift.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

if TYPE_CHECKING:
    from arrive.features.spec import BuildContext

Stat = Literal["count", "mean", "std", "sum"]
Stream = Literal["delivery", "prep", "created", "open"]
"""Observation streams derived from order lifecycles (see :mod:`arrive.features.online`):
``delivery`` (delivery seconds, at delivery), ``prep`` (prep seconds, at food ready),
``created`` (1 at creation), ``open`` (+1 at creation, -1 at the first terminal event)."""

_CUM = ("_n", "_s", "_ss")
_NEVER: Final = np.iinfo(np.int64).min
"""A null time, as a physical integer (before every other)."""


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
        return self._named(SumsBefore.of(QueryIndex(queries, self.key), observations))

    def offline_in(self, ctx: BuildContext) -> pl.DataFrame:
        """:meth:`offline` for the spine of ``ctx``, its stream's sums shared by every
        declaration over the same stream and key (see :func:`sums_before`)."""
        return self._named(sums_before(ctx, self.stream, self.key))

    def _named(self, before: SumsBefore) -> pl.DataFrame:
        frame = before.stats(dict(self.windows), self.prefix, self.stats)
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
        or std over an empty window is null, a count or sum is 0; every statistic of a
        query with a null key is null (no such entity: unknown, not an empty window).
    """
    before = SumsBefore.of(QueryIndex(queries, key), observations)
    return before.stats(windows, prefix, stats)


def sums_before(ctx: BuildContext, stream: Stream, key: str) -> SumsBefore:
    """The :class:`SumsBefore` of ``stream`` keyed by ``key`` for the spine of ``ctx``,
    built once per build (the queries' side once per key)."""
    return ctx.memo(
        ("sums_before", stream, key),
        lambda: SumsBefore.of(
            ctx.memo(("query_index", key), lambda: QueryIndex(ctx.queries(key), key)),
            ctx.observations(stream, key),
        ),
    )


def _running(
    code: npt.NDArray[np.signedinteger[Any]], value: npt.NDArray[np.float64]
) -> list[npt.NDArray[np.float64]]:
    """Per observation, the count, sum and sum of squares of its key's observations up
    to it (``_n``, ``_s``, ``_ss``), for observations sorted by key (``code``), then time."""
    frame = pl.DataFrame({"_code": code, "value": value})
    v = pl.col("value")
    sums = frame.select(
        _n=pl.int_range(1, pl.len() + 1).over("_code").cast(pl.Float64),
        _s=v.cum_sum().over("_code"),
        _ss=(v * v).cum_sum().over("_code"),
    )
    return [sums.get_column(c).to_numpy() for c in _CUM]


class QueryIndex:
    """The queries of :class:`SumsBefore`, sorted once per key: by time, and by
    (key, time), where the observation numbers they look up ascend.

    Keys are coded as their index among the queries' distinct keys, in the smallest
    integer type that holds them (NumPy sorts 16-bit integers stably in linear time).

    Args:
        queries: ``_row``, ``key`` and ``t`` per row.
        key: the key column.
    """

    def __init__(self, queries: pl.DataFrame, key: str) -> None:
        self.queries = queries.select("_row", key, "t")
        self.key = key
        keys = queries.get_column(key)
        self.vocabulary = keys.drop_nulls().unique()
        self._dtype = pl.Int16 if len(self.vocabulary) < 2**15 else pl.Int64
        code = self.codes(keys)
        t = queries.get_column("t")
        time = t.to_physical().fill_null(_NEVER).to_numpy()
        by_time = np.argsort(time, kind="stable")
        self.t = t.gather(by_time)  # ascending, nulls first
        self.by_key = by_time[np.argsort(code[by_time], kind="stable")]  # (key, time) order
        self.code = code[self.by_key]
        slot = np.empty(len(time), dtype=np.intp)
        slot[by_time] = np.arange(len(time))
        self.time_slot = slot[self.by_key]  # where each, in (key, time) order, is in time order

    def codes(self, keys: pl.Series) -> npt.NDArray[np.signedinteger[Any]]:
        """Each key's index in :attr:`vocabulary` (-1: null, or no query has it)."""
        vocabulary = self.vocabulary
        if not len(vocabulary):
            return np.full(len(keys), -1, dtype=np.int16)
        indexed = keys.cast(vocabulary.dtype).replace_strict(
            vocabulary,
            pl.int_range(len(vocabulary), eager=True),
            default=-1,
            return_dtype=self._dtype,
        )
        return indexed.fill_null(-1).to_numpy()


class SumsBefore:
    """Per query, the count, sum and sum of squares of its key's observations strictly
    before ``t - offset`` (0 when none): the as-of join of every window as two binary
    searches in NumPy, over arrays sorted once.

    The observations are sorted by (key, time) once, with their running sums per key
    (:func:`_running`). They are numbered by (key,
    distinct time), so "the same key and earlier" is "a smaller number"; of
    observations at one instant the last, whose sums include them all, is the one read,
    as an as-of join reads it.

    Args:
        index: the queries.
        code, time, value: the observations' key codes (:meth:`QueryIndex.codes`), times
            (physical integers of the queries' time type) and values, none missing.
    """

    def __init__(
        self,
        index: QueryIndex,
        code: npt.NDArray[np.signedinteger[Any]],
        time: npt.NDArray[np.int64],
        value: npt.NDArray[np.float64],
    ) -> None:
        self.index = index
        by_time = np.argsort(time, kind="stable")
        by_key = np.argsort(code[by_time], kind="stable")  # stable: in time order per key
        order = by_time[by_key]
        times = time[by_time]
        new = np.empty(len(times), dtype=bool)
        new[:1] = True
        np.not_equal(times[1:], times[:-1], out=new[1:])
        self._times = times[new]  # the distinct instants, in order
        rank = (np.cumsum(new) - 1)[by_key]
        self._span = len(self._times) + 1
        self._code = code[order]
        self._numbered = self._code.astype(np.int64) * self._span + rank
        self._sums = _running(self._code, value[order])
        self._memo: dict[timedelta, pl.DataFrame] = {}

    @classmethod
    def of(cls, index: QueryIndex, observations: pl.DataFrame) -> SumsBefore:
        """From raw observations (``key``, ``time``, ``value``; rows with a null are
        ignored, and so are keys no query has: they are never read)."""
        frame = observations.select(
            _code=pl.Series(index.codes(observations.get_column(index.key))),
            time=pl.col("time").cast(index.queries.schema["t"]).to_physical(),
            value=pl.col("value").cast(pl.Float64),
        ).filter(
            (pl.col("_code") >= 0) & pl.col("time").is_not_null() & pl.col("value").is_not_null()
        )
        return cls(
            index,
            frame.get_column("_code").to_numpy(),
            frame.get_column("time").to_numpy(),
            frame.get_column("value").to_numpy(),
        )

    def sums(self, offset: timedelta | None) -> pl.DataFrame:
        """``_n``, ``_s`` and ``_ss`` as of ``t - offset`` (None: before all time, 0)."""
        if offset is None or not len(self._code):
            return pl.DataFrame({c: np.zeros(len(self.index.queries)) for c in _CUM})
        if offset not in self._memo:
            self._memo[offset] = self._sums_at(offset)
        return self._memo[offset]

    def _sums_at(self, offset: timedelta) -> pl.DataFrame:
        index = self.index
        at = (index.t - offset).to_physical().fill_null(_NEVER).to_numpy()  # ascending
        before = np.searchsorted(self._times, at, side="left")[index.time_slot]
        wanted = index.code.astype(np.int64) * self._span + before
        found = np.searchsorted(self._numbered, wanted) - 1
        hit = (found >= 0) & (index.code >= 0)
        hit[hit] = self._code[found[hit]] == index.code[hit]
        taken = np.where(hit, found, 0)
        out = {}
        for c, values in zip(_CUM, self._sums, strict=True):
            column = np.empty(len(hit))
            column[index.by_key] = np.where(hit, values[taken], 0.0)
            out[c] = column
        return pl.DataFrame(out)

    def stats(
        self, windows: Mapping[str, timedelta | None], prefix: str, stats: tuple[Stat, ...]
    ) -> pl.DataFrame:
        """``_row`` then ``{prefix}_{stat}_{label}`` per window and stat (see
        :func:`trailing_stats`)."""
        now = self.sums(timedelta(0))
        queries = self.index.queries
        out = queries.select("_row")
        for label, length in windows.items():
            delta = now - self.sums(length)
            out = out.with_columns(_stats(delta, f"{prefix}_{{}}_{label}", stats))
        known = queries.get_column(self.index.key).is_not_null()
        return out.with_columns(pl.when(known).then(pl.col(c)).alias(c) for c in out.columns[1:])


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


UNIT: Final = 1_000_000
"""Online observation values are integers in millionths (µs for durations, 10**6 for a
count of one), so :class:`Observations` sums them exactly."""


class Observations:
    """Online twin of one key's trailing windows over one stream.

    Holds the key's observations once, whatever the number of windows: each finite
    window keeps the index of its oldest observation still inside (its head) and
    the sums of those that left it. Sums are exact integers (values in millionths,
    see :data:`UNIT`), so the statistics depend only on which observations a window
    holds, never on the order they arrived in, how they were batched, or when
    expiry ran. Observations may arrive out of order (they are inserted in time
    order; one older than a window's head counts as already gone from it).

    Args:
        lengths: window lengths in µs, each finite (all history needs no window:
            it is :attr:`n`, :attr:`s`, :attr:`ss`).

    Attributes:
        due: per window, when its head leaves it (``head time + length``; None when
            the window is empty); the caller schedules :meth:`expire` from it.
    """

    __slots__ = ("due", "heads", "lengths", "n", "out", "s", "ss", "times", "values")

    def __init__(self, lengths: tuple[int, ...]) -> None:
        self.lengths = lengths
        self.times: list[int] = []
        self.values: list[int] = []
        self.heads = [0] * len(lengths)
        self.due: list[int | None] = [None] * len(lengths)
        self.out = [[0, 0, 0] for _ in lengths]  # per window: n, s, ss of those that left
        self.n = 0
        self.s = 0
        self.ss = 0

    def add(self, time_us: int, value: int) -> Sequence[tuple[int, int]]:
        """Count one observation (``value`` in millionths).

        Returns:
            ``(window, due)`` of each window whose :attr:`due` moved earlier (to schedule).
        """
        self.n += 1
        self.s += value
        self.ss += value * value
        if not self.lengths:
            return ()
        times = self.times
        if not times or time_us >= times[-1]:
            at = len(times)
            times.append(time_us)
            self.values.append(value)
            if max(self.heads) < at:  # in order, and no window was empty: the common case
                return ()
        else:
            at = bisect.bisect_right(times, time_us)
            times.insert(at, time_us)
            self.values.insert(at, value)
        moved: list[tuple[int, int]] = []
        heads, due = self.heads, self.due
        for w, head in enumerate(heads):
            if at < head:  # older than observations that already left this window
                heads[w] = head + 1
                out = self.out[w]
                out[0] += 1
                out[1] += value
                out[2] += value * value
            elif at == head:  # the window's new oldest observation
                when = time_us + self.lengths[w]
                old = due[w]
                if old is None or when < old:
                    due[w] = when
                    moved.append((w, when))
        return moved

    def expire(self, w: int, now_us: int) -> bool:
        """Drop from window ``w`` what is older than ``now_us`` minus its length (an
        observation at ``o`` counts at ``t`` while ``o + length >= t``); True when any left."""
        length = self.lengths[w]
        cutoff = now_us - length
        times, values = self.times, self.values
        start = head = self.heads[w]
        end = len(times)
        if head < end and times[head] < cutoff:
            out = self.out[w]
            n, s, ss = out
            while head < end and times[head] < cutoff:
                value = values[head]
                n += 1
                s += value
                ss += value * value
                head += 1
            out[0], out[1], out[2] = n, s, ss
            self.heads[w] = head
        self.due[w] = times[head] + length if head < end else None
        if head != start:
            if head > 512:
                self._compact()
            return True
        return False

    def expire_all(self, now_us: int) -> int:
        """:meth:`expire` every window that is due before ``now_us``; returns the windows
        that changed as a bit mask (bit ``w`` for window ``w``)."""
        changed = 0
        for w, when in enumerate(self.due):
            if when is not None and when < now_us and self.expire(w, now_us):
                changed |= 1 << w
        return changed

    def next_due(self) -> int | None:
        """The earliest :attr:`due` of any window (None when all are empty)."""
        return min((when for when in self.due if when is not None), default=None)

    def _compact(self) -> None:
        first = min(self.heads)
        if first > 512 and first * 2 > len(self.times):
            del self.times[:first], self.values[:first]
            self.heads = [head - first for head in self.heads]

    def stat(self, w: int | None, stat: Stat) -> float | None:
        """Statistic ``stat`` of window ``w`` (None: all history) now; None for a mean
        or std of an empty window."""
        return self.stats(w, (stat,))[0]

    def stats(self, w: int | None, stats: Sequence[Stat]) -> list[float | None]:
        """Each of ``stats`` of window ``w`` (None: all history), as :meth:`stat`."""
        n, s, ss = self.n, self.s, self.ss
        if w is not None:
            out = self.out[w]
            n, s, ss = n - out[0], s - out[1], ss - out[2]
        values: list[float | None] = []
        for stat in stats:
            if stat == "count":
                values.append(float(n))
            elif stat == "sum":
                values.append(s / UNIT)
            elif n == 0:
                values.append(None)
            elif stat == "mean":
                values.append(s / (n * UNIT))
            else:
                values.append(math.sqrt(max(n * ss - s * s, 0)) / (n * UNIT))
        return values

    def to_state(self) -> ObservationsSnapshot:
        """A msgpack-ready snapshot (for checkpoints); sums as decimal strings (they
        may exceed 64 bits)."""
        first = min(self.heads, default=len(self.times))
        heads = [head - first for head in self.heads]
        sums = [str(x) for x in (self.n, self.s, self.ss)]
        outs = [[str(x) for x in out] for out in self.out]
        return (self.times[first:], self.values[first:], heads, sums, outs)

    @classmethod
    def from_state(cls, lengths: tuple[int, ...], state: ObservationsSnapshot) -> Observations:
        """The observations :meth:`to_state` described."""
        made = cls(lengths)
        made.load(state)
        return made

    def load(self, state: ObservationsSnapshot) -> None:
        """Replace these observations with those :meth:`to_state` described (same lengths)."""
        times, values, heads, sums, outs = state
        self.times, self.values, self.heads = list(times), list(values), list(heads)
        self.n, self.s, self.ss = (int(x) for x in sums)
        self.out = [[int(x) for x in out] for out in outs]
        self.due = [
            times[head] + length if head < len(times) else None
            for head, length in zip(heads, self.lengths, strict=True)
        ]


ObservationsSnapshot = tuple[list[int], list[int], list[int], list[str], list[list[str]]]
