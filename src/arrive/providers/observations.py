"""Provider answers as canonical events, so training sees exactly what serving saw.

The service turns each travel time it used into a ``travel_time_observation`` event
(:func:`travel_observation`) and each current weather into a ``weather_observation``
(:func:`weather_observation`), stamped with the time it asked, and publishes them to the
event stream it ingests from (keyed by the order, like the order's own events), or, with
no stream, appends them as JSON lines (:func:`observation_lines`) to a file beside the
prediction log that ``arrive ingest`` replays. See docs/providers-training.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Final, TypeVar

import msgspec

from arrive.errors import SchemaError
from arrive.providers.base import Leg, TravelTime, Weather
from arrive.schema.codec import encode_event, schema_error
from arrive.schema.events import TravelTimeObservation, WeatherObservation

_E = TypeVar("_E", TravelTimeObservation, WeatherObservation)

#: precipitation (mm/h) from which a provider's current weather counts as rain
RAIN_FROM_MM: Final = 0.1


def travel_observation(leg: Leg, answer: TravelTime, order_id: str | None) -> TravelTimeObservation:
    """The event recording ``answer`` for ``leg``, asked at ``leg.at`` for ``order_id``.

    Raises:
        SchemaError: a value the event log refuses (e.g. a negative or absurd time, NaN).
    """
    coords = (leg.origin_lat, leg.origin_lon, leg.dest_lat, leg.dest_lon)
    return _valid(
        TravelTimeObservation,
        {
            "event_id": _event_id("tt", order_id, coords, leg.at),
            "event_time": leg.at,
            "order_id": order_id,
            "provider": answer.source,
            "travel_time_s": answer.seconds,
            "origin_lat": leg.origin_lat,
            "origin_lon": leg.origin_lon,
            "destination_lat": leg.dest_lat,
            "destination_lon": leg.dest_lon,
            "distance_m": None if answer.distance_km is None else answer.distance_km * 1000.0,
        },
    )


def weather_observation(market_id: str, answer: Weather, at: datetime) -> WeatherObservation:
    """The event recording a provider's current weather in ``market_id`` at ``at``. A
    provider gives no condition: ``rain`` from :data:`RAIN_FROM_MM` mm/h, else ``dry``."""
    condition = "rain" if answer.precipitation_mm >= RAIN_FROM_MM else "dry"
    return _valid(
        WeatherObservation,
        {
            "event_id": _event_id("wx", market_id, (), at),
            "event_time": at,
            "market_id": market_id,
            "condition": condition,
            "temperature_c": answer.temperature_c,
            "precipitation_mm": answer.precipitation_mm,
        },
    )


def observation_lines(events: Iterable[TravelTimeObservation | WeatherObservation]) -> bytes:
    """``events`` as JSON lines (the format ``arrive ingest`` reads)."""
    return b"".join(encode_event(event) + b"\n" for event in events)


def _valid(cls: type[_E], fields: dict[str, object]) -> _E:
    fields["type"] = cls.__struct_config__.tag
    try:
        return msgspec.convert(fields, cls, builtin_types=(datetime,))
    except msgspec.ValidationError as exc:
        raise schema_error(str(exc)) from exc
    except ValueError as exc:  # a naive time
        raise SchemaError("event_time", str(exc)) from exc


def _event_id(prefix: str, key: str | None, coords: tuple[float, ...], at: datetime) -> str:
    """One id per question and instant, so a re-published answer is a duplicate."""
    leg = ",".join(f"{c:.6f}" for c in coords)
    digest = hashlib.blake2b(f"{key}|{leg}|{at.isoformat()}".encode(), digest_size=8).hexdigest()
    return f"{prefix}-{digest}"
