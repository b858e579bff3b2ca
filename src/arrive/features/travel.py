"""Travel-time estimate from pickup to drop: distance × the built-in speed
profile by local hour (the estimate a provider chain ends in, which cannot fail)."""

from __future__ import annotations

import numpy as np
import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec
from arrive.geo import haversine_km_expr, haversine_km_point
from arrive.schema.events import OrderCreated

name = "travel"

#: Typical urban courier speed (km/h) by local hour: slow at rush hours.
SPEED_KMH_BY_HOUR = np.array(
    [
        24,
        25,
        25,
        25,
        24,
        22,
        19,
        16,
        14,
        16,
        18,
        18,
        16,
        16,
        18,
        18,
        16,
        14,
        13,
        14,
        17,
        20,
        22,
        23,
    ],
    dtype=np.float64,
)
_SPEED_KMH: tuple[float, ...] = tuple(float(v) for v in SPEED_KMH_BY_HOUR)
DETOUR_FACTOR = 1.3  # road distance / great-circle distance, typical of cities
SPECS = (
    FeatureSpec(
        "travel_estimate_s",
        "order",
        "numeric",
        None,
        "built-in pickup-to-drop travel estimate, s",
        1e-6,
    ),
)
_COORDS = ("pickup_lat", "pickup_lon", "drop_lat", "drop_lon")


def missing(ctx: BuildContext) -> str | None:
    absent = [c for c in _COORDS if not ctx.has_column(c)]
    return f"orders carry no {', '.join(absent)}" if absent else None


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    return SPECS


def travel_estimate_s(distance_km: pl.Expr, hour: pl.Expr) -> pl.Expr:
    """Seconds to ride ``distance_km`` (great circle) starting at local ``hour`` (0-23)."""
    speed = hour.replace_strict(
        list(range(24)), SPEED_KMH_BY_HOUR.tolist(), return_dtype=pl.Float64
    )
    return distance_km * DETOUR_FACTOR / speed * 3600.0


def offline(ctx: BuildContext) -> pl.DataFrame:
    local = pl.col("created_at").dt.convert_time_zone(ctx.local_timezone)
    distance = haversine_km_expr(*(pl.col(c) for c in _COORDS))
    return ctx.orders.select(
        "_row", travel_estimate_s=travel_estimate_s(distance, local.dt.hour().cast(pl.Int64))
    )


def estimate_s(distance_km: float | None, hour: int) -> float | None:
    """Online twin of :func:`offline`: the estimate for an order's pickup-to-drop
    distance (:func:`order_distance_km`) at the local ``hour`` (None without a distance)."""
    if distance_km is None:
        return None
    return distance_km * DETOUR_FACTOR / _SPEED_KMH[hour] * 3600.0


def order_distance_km(order: OrderCreated) -> float | None:
    """Pickup-to-drop great-circle km of one order (None without coordinates)."""
    lat1, lon1, lat2, lon2 = order.pickup_lat, order.pickup_lon, order.drop_lat, order.drop_lon
    if lat1 is None or lon1 is None or lat2 is None or lon2 is None:
        return None
    return haversine_km_point(lat1, lon1, lat2, lon2)
