"""The canonical, versioned contracts of Arrive: the events and the ETA contract."""

from arrive.schema.codec import decode_event, decode_events, encode_event
from arrive.schema.eta import P50, P90, EtaAnswer, EtaRequest, Predictor
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
    TravelTimeObservation,
    WeatherObservation,
)

__all__ = [
    "EVENT_TYPES",
    "P50",
    "P90",
    "SCHEMA_VERSION",
    "AnyEvent",
    "Cancelled",
    "CourierAssigned",
    "CourierPing",
    "Delivered",
    "EtaAnswer",
    "EtaRequest",
    "Event",
    "FoodReady",
    "MarketSnapshot",
    "OrderConfirmed",
    "OrderCreated",
    "PickedUp",
    "Predictor",
    "TravelTimeObservation",
    "WeatherObservation",
    "decode_event",
    "decode_events",
    "encode_event",
]
