"""How a store has been doing: delivery durations and prep times over trailing
windows, and how much history it has (cold start)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec
from arrive.features.windows import Trailing

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
    for label in DELIVERY_WINDOWS:
        ttl = None  # maintained by the ingest engine, fresh while its watermark is current
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
            "store_delivery_std_7d", "store", "numeric", None, "std of delivery s, 7d", 1e-3
        )
    )
    if ctx.event_counts.get("food_ready"):
        for label in PREP_WINDOWS:
            ttl = None  # maintained by the ingest engine, fresh while its watermark is current
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


DELIVERIES = Trailing("delivery", "store_id", DELIVERY_WINDOWS, "store_delivery")
DELIVERY_SPREAD = Trailing(
    "delivery", "store_id", {"7d": timedelta(days=7)}, "store_delivery", stats=("std",)
)
HISTORY = Trailing(
    "delivery",
    "store_id",
    {"all": None},
    "store_history",
    stats=("count",),
    rename={"store_history_count_all": "store_history_count"},
)
PREPS = Trailing("prep", "store_id", PREP_WINDOWS, "store_prep")
ONLINE = (DELIVERIES, DELIVERY_SPREAD, HISTORY, PREPS)
"""The online twins of the offline computation below (applied by the ingest engine)."""


def offline(ctx: BuildContext) -> pl.DataFrame:
    frame = ctx.orders.select("_row")
    for part in (DELIVERIES, DELIVERY_SPREAD, HISTORY):
        frame = frame.join(part.offline_in(ctx), on="_row")
    if ctx.event_counts.get("food_ready"):
        frame = frame.join(PREPS.offline_in(ctx), on="_row")
    return frame
