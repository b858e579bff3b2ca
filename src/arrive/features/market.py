"""Market supply and demand: the latest market snapshot before ``t`` (couriers on
shift, busy, outstanding orders and their ratios), open and recent orders, and
how long deliveries in the market have been taking lately."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from arrive.features.load import load_offline, load_specs
from arrive.features.spec import BuildContext, FeatureSpec
from arrive.features.windows import trailing_stats

name = "market"

SNAPSHOT_TTL = timedelta(minutes=30)
_SNAPSHOT = ("couriers_on_shift", "couriers_busy", "outstanding_orders")
_RECENT_DELIVERY: dict[str, timedelta] = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}


def missing(ctx: BuildContext) -> str | None:
    return None if ctx.has_column("market_id") else "orders carry no market_id"


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    ttl = SNAPSHOT_TTL.total_seconds()
    out = list(load_specs("market"))
    out += [
        FeatureSpec(
            f"market_delivery_mean_{label}",
            "market",
            "numeric",
            w.total_seconds(),
            f"mean delivery s in the market, last {label}",
            1e-3,
        )
        for label, w in _RECENT_DELIVERY.items()
    ]
    if ctx.event_counts.get("market_snapshot"):
        out += [
            FeatureSpec(f"market_{c}", "market", "numeric", ttl, f"latest snapshot: {c}")
            for c in _SNAPSHOT
        ]
        out += [
            FeatureSpec(
                "market_busy_ratio", "market", "numeric", ttl, "busy / on-shift couriers", 1e-9
            ),
            FeatureSpec(
                "market_orders_per_courier",
                "market",
                "numeric",
                ttl,
                "outstanding orders / on-shift couriers",
                1e-9,
            ),
        ]
    return tuple(out)


def offline(ctx: BuildContext) -> pl.DataFrame:
    queries = ctx.orders.select("_row", "market_id", t=pl.col("created_at"))
    deliveries = ctx.deliveries("market_id")
    frame = load_offline(ctx, "market_id").join(
        trailing_stats(
            queries,
            deliveries,
            key="market_id",
            windows=dict[str, timedelta | None](_RECENT_DELIVERY),
            prefix="market_delivery",
            stats=("mean",),
        ),
        on="_row",
    )
    if ctx.event_counts.get("market_snapshot"):
        frame = frame.join(_snapshot(ctx), on="_row")
    return frame


def _snapshot(ctx: BuildContext) -> pl.DataFrame:
    latest = ctx.latest_before("market_snapshot", "market_id", _SNAPSHOT, SNAPSHOT_TTL)
    on_shift = pl.col("couriers_on_shift").cast(pl.Float64)
    ratio_base = pl.when(on_shift > 0).then(on_shift)
    return latest.select(
        "_row",
        *(pl.col(c).cast(pl.Float64).alias(f"market_{c}") for c in _SNAPSHOT),
        market_busy_ratio=pl.col("couriers_busy") / ratio_base,
        market_orders_per_courier=pl.col("outstanding_orders") / ratio_base,
    )
