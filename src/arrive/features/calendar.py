"""Local time of day and day of week of the order's creation."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import polars as pl

from arrive.features.spec import BuildContext, FeatureScalar, FeatureSpec
from arrive.schema.events import OrderCreated

name = "calendar"

SPECS = (
    FeatureSpec("hour_local", "order", "numeric", None, "local hour of creation, fractional"),
    FeatureSpec("dow_local", "order", "numeric", None, "local day of week, Monday = 0"),
)


def missing(ctx: BuildContext) -> str | None:
    return None


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    return SPECS


def offline(ctx: BuildContext) -> pl.DataFrame:
    local = pl.col("created_at").dt.convert_time_zone(ctx.local_timezone)
    return ctx.orders.select(
        "_row",
        hour_local=local.dt.hour() + local.dt.minute() / 60.0,
        dow_local=(local.dt.weekday() - 1).cast(pl.Float64),
    )


def online(order: OrderCreated, local: datetime) -> dict[str, FeatureScalar]:
    """Online twin of :func:`offline` for one order created at ``local`` (its local time)."""
    return {"hour_local": local.hour + local.minute / 60.0, "dow_local": float(local.weekday())}


CYCLIC: Final = tuple(spec.name for spec in SPECS)
"""Features that repeat every day or week: a window shorter than the cycle differs from
training by construction, so drift profiles leave them out."""
