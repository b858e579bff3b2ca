"""The canonical, versioned contracts of Arrive."""

from arrive.schema.codec import decode_event, decode_events, encode_event
from arrive.schema.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    AnyEvent,
    Cancelled,
    CourierAssigned,
    CourierPing,
    Delivered,
    Event,
    FoodReady,
    MarketSnapshot,
    OrderConfirmed,
    OrderCreated,
    PickedUp,
    WeatherObservation,
)

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "AnyEvent",
    "Cancelled",
    "CourierAssigned",
    "CourierPing",
    "Delivered",
    "Event",
    "FoodReady",
    "MarketSnapshot",
    "OrderConfirmed",
    "OrderCreated",
    "PickedUp",
    "WeatherObservation",
    "decode_event",
    "decode_events",
    "encode_event",
]
