"""Requests and order events convert both ways without losing a field."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from arrive.schema.eta import EtaRequest, to_order, to_request
from arrive.schema.events import OrderCreated


def test_an_order_event_survives_the_round_trip_through_a_request() -> None:
    order = OrderCreated(
        event_id="eta:r-1",
        event_time=datetime(2025, 3, 3, 12, 30, tzinfo=UTC),
        order_id="o-1",
        store_id="s-9",
        market_id="m-1",
        pickup_lat=12.97,
        pickup_lon=77.59,
        drop_lat=12.99,
        drop_lon=77.61,
        items=3,
        distinct_items=2,
        subtotal=18.5,
        store_category="pizza",
        courier_id="c-4",
        attributes={"weather": "Sunny", "courier_rating": 4.7},
    )
    wire = msgspec.json.encode(to_request(order))
    request = msgspec.json.decode(wire, type=EtaRequest)
    assert to_order(request, "r-1", datetime(2030, 1, 1, tzinfo=UTC)) == order
