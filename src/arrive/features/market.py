"""Market supply and demand: the latest market snapshot before ``t`` (couriers on
shift, busy, outstanding orders and their ratios), open and recent orders, and
how long deliveries in the market have been taking lately."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import polars as pl

from arrive.features.load import load_offline, load_online, load_specs
from arrive.features.spec import BuildContext, FeatureScalar, FeatureSpec, Latest
from arrive.features.windows import Trailing

name = "market"

SNAPSHOT_TTL = timedelta(minutes=30)
_SNAPSHOT = ("couriers_on_shift", "couriers_busy", "outstanding_orders")
_RECENT_DELIVERY: dict[str, timedelta | None] = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}


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
            None,
            f"mean delivery s in the market, last {label}",
            1e-3,
        )
        for label in _RECENT_DELIVERY
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


DELIVERIES = Trailing("delivery", "market_id", _RECENT_DELIVERY, "market_delivery", stats=("mean",))


def _ratios(values: Mapping[str, FeatureScalar]) -> dict[str, FeatureScalar]:
    """Online twin of the ratio expressions in :func:`_snapshot`."""
    on_shift = values["market_couriers_on_shift"]
    return {
        "market_busy_ratio": _ratio(values["market_couriers_busy"], on_shift),
        "market_orders_per_courier": _ratio(values["market_outstanding_orders"], on_shift),
    }


def _ratio(part: FeatureScalar, whole: FeatureScalar) -> float | None:
    if isinstance(part, float) and isinstance(whole, float) and whole > 0:
        return part / whole
    return None


SNAPSHOT = Latest(
    "market_snapshot",
    "market_id",
    {c: f"market_{c}" for c in _SNAPSHOT},
    SNAPSHOT_TTL,
    derive=_ratios,
)
ONLINE = (*load_online("market_id"), DELIVERIES, SNAPSHOT)


def offline(ctx: BuildContext) -> pl.DataFrame:
    frame = load_offline(ctx, "market_id").join(DELIVERIES.offline_in(ctx), on="_row")
    if ctx.event_counts.get("market_snapshot"):
        frame = frame.join(_snapshot(ctx), on="_row")
    return frame


def _snapshot(ctx: BuildContext) -> pl.DataFrame:
    latest = SNAPSHOT.offline(ctx)
    on_shift = pl.col("market_couriers_on_shift").cast(pl.Float64)
    ratio_base = pl.when(on_shift > 0).then(on_shift)
    return latest.select(
        "_row",
        *(pl.col(f"market_{c}").cast(pl.Float64) for c in _SNAPSHOT),
        market_busy_ratio=pl.col("market_couriers_busy") / ratio_base,
        market_orders_per_courier=pl.col("market_outstanding_orders") / ratio_base,
    )
