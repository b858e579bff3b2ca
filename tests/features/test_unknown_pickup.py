"""An order whose pickup is unknown (null): the distance and travel features are
missing for it, offline and online, never zero or NaN."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from arrive.features.travel import estimate_s, order_distance_km, travel_estimate_s
from arrive.geo import haversine_km_expr
from arrive.schema.events import OrderCreated


def test_offline_distance_and_travel_are_null_without_a_pickup() -> None:
    orders = pl.DataFrame(
        {
            "pickup_lat": [22.745, None],
            "pickup_lon": [75.892, None],
            "drop_lat": [22.765, 22.765],
            "drop_lon": [75.912, 75.912],
        }
    )
    distance = haversine_km_expr(*(pl.col(c) for c in orders.columns))
    out = orders.select(km=distance, s=travel_estimate_s(distance, pl.lit(12, pl.Int64)))
    assert out.get_column("km").null_count() == 1
    assert out.get_column("s").null_count() == 1
    assert out.get_column("km")[0] > 0


def test_online_distance_and_travel_are_none_without_a_pickup() -> None:
    order = OrderCreated(
        event_id="1:order_created",
        event_time=datetime(2024, 5, 1, 10, tzinfo=UTC),
        order_id="1",
        drop_lat=22.765,
        drop_lon=75.912,
    )
    assert order_distance_km(order) is None
    assert estimate_s(None, 12) is None
