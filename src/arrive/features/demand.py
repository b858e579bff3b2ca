"""Demand so far today: orders placed since local midnight, platform-wide and in
the order's market (a busy day, or a quiet one, shows up long before its
deliveries do)."""

from __future__ import annotations

import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec
from arrive.features.windows import Trailing

name = "demand"

PLATFORM = Trailing(
    "created",
    "day",
    {"all": None},
    "platform_orders",
    stats=("count",),
    rename={"platform_orders_count_all": "platform_orders_today"},
)
MARKET = Trailing(
    "created",
    "market_day",
    {"all": None},
    "market_orders",
    stats=("count",),
    rename={"market_orders_count_all": "market_orders_today"},
)
ONLINE = (PLATFORM, MARKET)


def missing(ctx: BuildContext) -> str | None:
    return None


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    out = [
        FeatureSpec(
            "platform_orders_today",
            "order",
            "numeric",
            None,
            "orders placed since local midnight",
        )
    ]
    if ctx.has_column("market_id"):
        out.append(
            FeatureSpec(
                "market_orders_today",
                "market",
                "numeric",
                None,
                "orders placed in the market since local midnight",
            )
        )
    return tuple(out)


def offline(ctx: BuildContext) -> pl.DataFrame:
    frame = ctx.orders.select("_row")
    parts = [PLATFORM, MARKET] if ctx.has_column("market_id") else [PLATFORM]
    for part in parts:
        block = part.offline_in(ctx)
        frame = frame.join(block.with_columns(pl.exclude("_row").cast(pl.Float64)), on="_row")
    return frame
