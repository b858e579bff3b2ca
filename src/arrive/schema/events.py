"""Canonical event schema, version 1.

Every source (importers, the simulator, file replay, Kafka, Redis Streams)
produces these events and nothing else. Each event has an ``event_id``, a
``type`` tag, a timezone-aware UTC ``event_time`` and a ``schema_version``.
Events are frozen and slotted; JSON (de)serialisation lives in
:mod:`arrive.schema.codec`.

Units: coordinates in decimal degrees, money in the currency's major unit,
temperatures in °C, precipitation in mm/h.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

import msgspec

SCHEMA_VERSION: Final = 1

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Lat = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Money = Annotated[float, msgspec.Meta(ge=0.0)]
AttributeValue = str | int | float | bool
CourierStatus = Literal["idle", "busy", "offline"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every event carries."""

    event_id: Id
    event_time: datetime
    schema_version: Literal[1] = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.event_time.tzinfo is None or self.event_time.utcoffset() is None:
            raise ValueError("event_time: must be timezone-aware (end it in Z or +00:00)")
        if self.event_time.tzinfo is not UTC:
            msgspec.structs.force_setattr(self, "event_time", _in_utc(self.event_time))


def _in_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("event_time: out of range once converted to UTC") from None


class OrderCreated(Event, frozen=True, kw_only=True, tag="order_created"):
    """A customer placed an order. ``attributes`` holds context known at creation
    (e.g. weather or traffic as the source recorded them) under names of the source's choosing."""

    order_id: Id
    store_id: Id | None = None
    market_id: Id | None = None
    pickup_lat: Lat | None = None
    pickup_lon: Lon | None = None
    drop_lat: Lat | None = None
    drop_lon: Lon | None = None
    items: Count | None = None
    distinct_items: Count | None = None
    subtotal: Money | None = None
    store_category: str | None = None
    courier_id: Id | None = None
    attributes: dict[str, AttributeValue] = msgspec.field(default_factory=dict)


#: What an OrderCreated event says of its order, besides its id, time and attributes: the
#: one list of an order's fields, from which the event log's and the orders table's columns
#: and the ETA request's conversions are derived.
ORDER_FIELDS: Final = tuple(
    name
    for name in OrderCreated.__struct_fields__
    if name not in {*Event.__struct_fields__, "order_id", "attributes"}
)


class OrderConfirmed(Event, frozen=True, kw_only=True, tag="order_confirmed"):
    """The store accepted the order."""

    order_id: Id
    store_id: Id | None = None


class FoodReady(Event, frozen=True, kw_only=True, tag="food_ready"):
    """The store finished preparing the order."""

    order_id: Id
    store_id: Id | None = None


class CourierAssigned(Event, frozen=True, kw_only=True, tag="courier_assigned"):
    """A courier took the order."""

    order_id: Id
    courier_id: Id
    vehicle: str | None = None
    rating: Annotated[float, msgspec.Meta(ge=0.0, le=5.0)] | None = None


class PickedUp(Event, frozen=True, kw_only=True, tag="picked_up"):
    """The courier left the store with the order."""

    order_id: Id
    courier_id: Id | None = None


class Delivered(Event, frozen=True, kw_only=True, tag="delivered"):
    """The order reached the customer: the outcome an ETA is judged against."""

    order_id: Id
    courier_id: Id | None = None


class Cancelled(Event, frozen=True, kw_only=True, tag="cancelled"):
    """The order was cancelled, with the reason the source gave."""

    order_id: Id
    reason: Annotated[str, msgspec.Meta(min_length=1)]


class CourierPing(Event, frozen=True, kw_only=True, tag="courier_ping"):
    """A courier's location and status."""

    courier_id: Id
    lat: Lat
    lon: Lon
    status: CourierStatus
    market_id: Id | None = None


class WeatherObservation(Event, frozen=True, kw_only=True, tag="weather_observation"):
    """Weather in a market."""

    market_id: Id
    condition: Annotated[str, msgspec.Meta(min_length=1)]
    temperature_c: float | None = None
    precipitation_mm: Annotated[float, msgspec.Meta(ge=0.0)] | None = None


class TravelTimeObservation(Event, frozen=True, kw_only=True, tag="travel_time_observation"):
    """A travel-time provider's answer for one leg, as the service used it: ``event_time`` is
    when it was asked, ``order_id`` the order it was asked for (when known), ``provider``
    where the time came from (a provider's name, ``cache``, ``grace`` or ``builtin``).
    Training reads these so that it sees exactly what serving saw."""

    provider: Id
    travel_time_s: Annotated[float, msgspec.Meta(ge=0.0, le=86_400.0)]
    order_id: Id | None = None
    origin_lat: Lat | None = None
    origin_lon: Lon | None = None
    destination_lat: Lat | None = None
    destination_lon: Lon | None = None
    distance_m: Annotated[float, msgspec.Meta(ge=0.0)] | None = None


class MarketSnapshot(Event, frozen=True, kw_only=True, tag="market_snapshot"):
    """Supply and demand in a market at an instant."""

    market_id: Id
    couriers_on_shift: Count | None = None
    couriers_busy: Count | None = None
    outstanding_orders: Count | None = None


AnyEvent = (
    OrderCreated
    | OrderConfirmed
    | FoodReady
    | CourierAssigned
    | PickedUp
    | Delivered
    | Cancelled
    | CourierPing
    | WeatherObservation
    | TravelTimeObservation
    | MarketSnapshot
)

EVENT_TYPES: Final[dict[str, type[Event]]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        OrderCreated,
        OrderConfirmed,
        FoodReady,
        CourierAssigned,
        PickedUp,
        Delivered,
        Cancelled,
        CourierPing,
        WeatherObservation,
        TravelTimeObservation,
        MarketSnapshot,
    )
}
