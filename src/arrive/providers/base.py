"""The provider protocols: what every travel-time and weather adapter offers.

An adapter answers one question per call or raises :class:`ProviderError` with a
``reason`` from :data:`REASONS` (the ``reason`` label of the provider metrics). An answer
that comes back is already validated: finite, non-negative, plausible for the distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol, runtime_checkable

from arrive.errors import InternalError, SchemaError
from arrive.geo import haversine_km_point

REASONS: Final = (
    "timeout",
    "connection",
    "dns",
    "tls",
    "http_4xx",
    "http_5xx",
    "rate_limited",
    "garbage",
    "wrong_shape",
    "empty",
    "negative",
    "not_finite",
    "absurd",
    "breaker_open",
    "budget",
)
"""Why a provider call gave no answer."""


@dataclass(frozen=True, slots=True)
class Leg:
    """One trip: from (``origin_lat``, ``origin_lon``) to (``dest_lat``, ``dest_lon``),
    starting at ``at`` (UTC)."""

    origin_lat: float
    origin_lon: float
    dest_lat: float
    dest_lon: float
    at: datetime

    def __post_init__(self) -> None:
        for field, limit in (("origin_lat", 90.0), ("origin_lon", 180.0)):
            _check_degrees(field, getattr(self, field), limit)
        for field, limit in (("dest_lat", 90.0), ("dest_lon", 180.0)):
            _check_degrees(field, getattr(self, field), limit)
        if not isinstance(self.at, datetime) or self.at.tzinfo is None:
            raise SchemaError("at", f"must be a timezone-aware datetime (got {self.at!r})")

    @property
    def great_circle_km(self) -> float:
        """Great-circle distance from origin to destination (km)."""
        return haversine_km_point(self.origin_lat, self.origin_lon, self.dest_lat, self.dest_lon)


def _check_degrees(field: str, value: object, limit: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not -limit <= value <= limit:  # type: ignore[operator]
        raise SchemaError(field, f"must be a number of degrees in [-{limit:g}, {limit:g}]")


@dataclass(frozen=True, slots=True)
class TravelTime:
    """A leg's travel time in seconds; ``source`` is the provider's name, or ``cache``,
    ``grace`` or ``builtin`` once the chain has answered."""

    seconds: float
    source: str
    distance_km: float | None = None


@dataclass(frozen=True, slots=True)
class Weather:
    """Current weather at a point; ``source`` as for :class:`TravelTime`."""

    temperature_c: float
    precipitation_mm: float
    wind_kmh: float
    source: str


class ProviderError(InternalError):
    """A provider gave no usable answer; ``reason`` is one of :data:`REASONS`.
    ``retry_after_s`` is set when the vendor asked to be left alone (429 Retry-After)."""

    def __init__(
        self, provider: str, reason: str, detail: str = "", retry_after_s: float | None = None
    ) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown provider error reason {reason!r}")
        self.provider = provider
        self.reason = reason
        self.retry_after_s = retry_after_s
        super().__init__(f"provider {provider}: {reason}" + (f" ({detail})" if detail else ""))


@runtime_checkable
class TravelTimeProvider(Protocol):
    """Travel time of one leg, within ``timeout_s`` seconds."""

    name: str

    async def travel_time(self, leg: Leg, *, timeout_s: float) -> TravelTime: ...

    async def close(self) -> None: ...


@runtime_checkable
class WeatherProvider(Protocol):
    """Current weather at (``lat``, ``lon``), within ``timeout_s`` seconds."""

    name: str

    async def current(self, lat: float, lon: float, *, timeout_s: float) -> Weather: ...

    async def close(self) -> None: ...
