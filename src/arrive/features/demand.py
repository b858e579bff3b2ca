"""Demand so far today: orders placed since local midnight, platform-wide and in
the order's market (a busy day, or a quiet one, shows up long before its
deliveries do)."""

from __future__ import annotations

import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec
from arrive.features.windows import trailing_stats

name = "demand"

_DAY_S = 86400.0


def missing(ctx: BuildContext) -> str | None:
    return None


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    out = [
        FeatureSpec(
            "platform_orders_today",
            "order",
            "numeric",
            _DAY_S,
            "orders placed since local midnight",
        )
    ]
    if ctx.has_column("market_id"):
        out.append(
            FeatureSpec(
                "market_orders_today",
                "market",
                "numeric",
                _DAY_S,
                "orders placed in the market since local midnight",
            )
        )
    return tuple(out)


def local_day_key(time: pl.Expr, timezone: str, prefix: pl.Expr | None = None) -> pl.Expr:
    """The local calendar day of ``time`` (optionally prefixed by an entity id) as a key."""
    day = time.dt.convert_time_zone(timezone).dt.date().cast(pl.String)
    return day if prefix is None else prefix + pl.lit("|") + day


def offline(ctx: BuildContext) -> pl.DataFrame:
    frame = ctx.orders.select("_row")
    created = ctx.lifecycle.select("market_id", time=pl.col("created"), value=pl.lit(1.0))
    keys: dict[str, pl.Expr | None] = {"platform": None}
    if ctx.has_column("market_id"):
        keys["market"] = pl.col("market_id")
    for label, prefix in keys.items():
        queries = ctx.orders.select(
            "_row",
            t=pl.col("created_at"),
            k=local_day_key(pl.col("created_at"), ctx.local_timezone, prefix),
        )
        obs = created.select(
            "time", "value", k=local_day_key(pl.col("time"), ctx.local_timezone, prefix)
        )
        counts = trailing_stats(
            queries, obs, key="k", windows={"all": None}, prefix="n", stats=("count",)
        )
        frame = frame.join(
            counts.select(
                "_row", pl.col("n_count_all").cast(pl.Float64).alias(f"{label}_orders_today")
            ),
            on="_row",
        )
    return frame
