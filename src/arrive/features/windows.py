"""Trailing event-time aggregates, exact and vectorised.

For a query at time ``t`` and a window ``w``, the aggregate covers the
observations of the same key with ``t - w <= time < t``: the current instant is
excluded, so nothing at or after the order's creation leaks in. Computed from
per-key cumulative sums read with strict as-of joins; the online update keeps
the same sums per key, so both paths agree.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

_CUM = ("_n", "_s", "_ss")


def trailing_stats(
    queries: pl.DataFrame,
    observations: pl.DataFrame,
    *,
    key: str,
    windows: dict[str, timedelta | None],
    prefix: str,
    stats: tuple[str, ...] = ("count", "mean"),
) -> pl.DataFrame:
    """Count / mean / std of ``value`` per key over trailing windows.

    Args:
        queries: ``_row``, ``key`` and ``t`` (UTC) per row.
        observations: ``key``, ``time`` and ``value``; rows with a null key, time or value
            are ignored.
        windows: label → length; None means all history before ``t``.
        prefix: column prefix, e.g. ``"store_delivery"`` gives ``store_delivery_mean_7d``.
        stats: any of ``count``, ``mean``, ``std``.

    Returns:
        ``_row`` then one column per window and stat, in ``queries`` order. A mean
        or std over an empty window is null, a count is 0.
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


def _stats(delta: pl.DataFrame, name: str, stats: tuple[str, ...]) -> list[pl.Series]:
    n, s, ss = (delta.get_column(c) for c in _CUM)
    mean = (s / n).fill_nan(None)
    builders = {
        "count": lambda: n.cast(pl.Int64),
        "mean": lambda: mean,
        "std": lambda: ((ss / n - mean * mean).clip(lower_bound=0.0).sqrt()).fill_nan(None),
    }
    return [builders[stat]().alias(name.format(stat)) for stat in stats]
