"""Weather in the order's market: the latest observation before ``t``."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec, Latest

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


LATEST = Latest(
    "weather_observation",
    "market_id",
    {
        "condition": "weather_condition",
        "temperature_c": "temperature_c",
        "precipitation_mm": "precipitation_mm",
    },
    WEATHER_TTL,
)
ONLINE = (LATEST,)


def offline(ctx: BuildContext) -> pl.DataFrame:
    return LATEST.offline(ctx)
