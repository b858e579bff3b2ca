"""Weather in the order's market: the latest observation before ``t``."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec

name = "weather"

WEATHER_TTL = timedelta(hours=3)
_TTL_S = WEATHER_TTL.total_seconds()
SPECS = (
    FeatureSpec("weather_condition", "market", "categorical", _TTL_S, "latest weather condition"),
    FeatureSpec("temperature_c", "market", "numeric", _TTL_S, "latest temperature, °C"),
    FeatureSpec("precipitation_mm", "market", "numeric", _TTL_S, "latest precipitation, mm/h"),
)


def missing(ctx: BuildContext) -> str | None:
    if not ctx.event_counts.get("weather_observation"):
        return "the event log has no weather observations"
    return None if ctx.has_column("market_id") else "orders carry no market_id"


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    return SPECS


def offline(ctx: BuildContext) -> pl.DataFrame:
    observations = (
        ctx.events.filter(pl.col("type") == "weather_observation")
        .select("market_id", "event_time", "condition", "temperature_c", "precipitation_mm")
        .sort("event_time")
        .collect()
    )
    joined = (
        ctx.orders.select("_row", "market_id", "created_at")
        .sort("created_at")
        .join_asof(
            observations,
            left_on="created_at",
            right_on="event_time",
            by="market_id",
            strategy="backward",
            allow_exact_matches=False,
            tolerance=WEATHER_TTL,
            check_sortedness=False,
        )
    )
    return joined.sort("_row").select(
        "_row", pl.col("condition").alias("weather_condition"), "temperature_c", "precipitation_mm"
    )
