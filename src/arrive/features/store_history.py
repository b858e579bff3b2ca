"""How a store has been doing: delivery durations and prep times over trailing
windows, and how much history it has (cold start)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec
from arrive.features.windows import trailing_stats

name = "store_history"

DELIVERY_WINDOWS: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "28d": timedelta(days=28),
}
PREP_WINDOWS: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
}


def missing(ctx: BuildContext) -> str | None:
    if not ctx.has_column("store_id"):
        return "orders carry no store_id"
    if not ctx.event_counts.get("delivered"):
        return "the event log has no delivered events"
    return None


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    out = [
        FeatureSpec(
            "store_history_count",
            "store",
            "numeric",
            None,
            "deliveries of the store so far (cold start)",
        )
    ]
    for label, length in DELIVERY_WINDOWS.items():
        ttl = length.total_seconds() if length else None
        out.append(
            FeatureSpec(
                f"store_delivery_count_{label}",
                "store",
                "numeric",
                ttl,
                f"deliveries, last {label}",
            )
        )
        out.append(
            FeatureSpec(
                f"store_delivery_mean_{label}",
                "store",
                "numeric",
                ttl,
                f"mean delivery s, last {label}",
                1e-3,
            )
        )
    out.append(
        FeatureSpec(
            "store_delivery_std_7d", "store", "numeric", 7 * 86400.0, "std of delivery s, 7d", 1e-3
        )
    )
    if ctx.event_counts.get("food_ready"):
        for label, length in PREP_WINDOWS.items():
            ttl = length.total_seconds() if length else None
            out.append(
                FeatureSpec(
                    f"store_prep_mean_{label}",
                    "store",
                    "numeric",
                    ttl,
                    f"mean prep s, last {label}",
                    1e-3,
                )
            )
            out.append(
                FeatureSpec(
                    f"store_prep_count_{label}", "store", "numeric", ttl, f"preps, last {label}"
                )
            )
    return tuple(out)


def offline(ctx: BuildContext) -> pl.DataFrame:
    queries = ctx.orders.select("_row", "store_id", t=pl.col("created_at"))
    life = ctx.lifecycle
    deliveries = ctx.deliveries("store_id")
    frame = (
        trailing_stats(
            queries, deliveries, key="store_id", windows=DELIVERY_WINDOWS, prefix="store_delivery"
        )
        .join(
            trailing_stats(
                queries,
                deliveries,
                key="store_id",
                windows={"7d": timedelta(days=7)},
                prefix="store_delivery",
                stats=("std",),
            ),
            on="_row",
        )
        .join(
            trailing_stats(
                queries,
                deliveries,
                key="store_id",
                windows={"all": None},
                prefix="store_history",
                stats=("count",),
            ).rename({"store_history_count_all": "store_history_count"}),
            on="_row",
        )
    )
    if ctx.event_counts.get("food_ready"):
        start = pl.coalesce("confirmed", "created")
        preps = life.select(
            "store_id",
            time=pl.col("ready"),
            value=(pl.col("ready") - start).dt.total_microseconds() / 1e6,
        )
        frame = frame.join(
            trailing_stats(
                queries, preps, key="store_id", windows=PREP_WINDOWS, prefix="store_prep"
            ),
            on="_row",
        )
    return frame
