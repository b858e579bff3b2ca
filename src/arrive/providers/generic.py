"""A configurable JSON-over-HTTP travel-time vendor (the commercial matrix and directions
APIs): a URL template, where the duration and distance sit in the answer, their units and
how the key is sent.

The template's fields are ``{origin_lat}``, ``{origin_lon}``, ``{dest_lat}``, ``{dest_lon}``
and ``{departure}`` (Unix seconds)::

    url = "https://api.vendor.example/matrix?from={origin_lat},{origin_lon}&to={dest_lat},{dest_lon}"
    duration_path = "rows.0.elements.0.duration.value"
    duration_unit = "s"
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final, Literal

from arrive.providers import plausible
from arrive.providers.base import Leg, TravelTime
from arrive.providers.http import VendorClient, counted
from arrive.providers.jsonpath import Path, dig

DurationUnit = Literal["s", "min", "ms"]
DistanceUnit = Literal["m", "km"]
KeyPlace = Literal["header", "query", "none"]
SECONDS_PER: Final[dict[str, float]] = {"s": 1.0, "min": 60.0, "ms": 0.001}
KM_PER: Final[dict[str, float]] = {"m": 0.001, "km": 1.0}
TEMPLATE_FIELDS: Final = ("origin_lat", "origin_lon", "dest_lat", "dest_lon", "departure")


@dataclass(frozen=True)
class GenericFormat:
    """Where the vendor's answer keeps its numbers, and how to authenticate.

    Attributes:
        url_template: the request URL with the fields of :data:`TEMPLATE_FIELDS`.
        duration_path: dotted path to the travel time.
        duration_unit: its unit.
        distance_path: dotted path to the road distance, or None.
        distance_unit: its unit.
        key: the API key, or None when ``key_in`` is ``none``.
        key_in: ``header`` (``key_name: key``) or ``query`` (``?key_name=key``) or ``none``.
        key_name: the header or query parameter carrying the key.
    """

    url_template: str
    duration_path: Path
    duration_unit: DurationUnit = "s"
    distance_path: Path | None = None
    distance_unit: DistanceUnit = "m"
    key: str | None = None
    key_in: KeyPlace = "header"
    key_name: str = "Authorization"


class GenericJsonProvider:
    """Travel time from a JSON HTTP vendor described by a :class:`GenericFormat`."""

    def __init__(self, name: str, client: VendorClient, form: GenericFormat) -> None:
        self.name = name
        self.failures: Counter[str] = Counter()
        self._client = client
        self._form = form

    async def travel_time(self, leg: Leg, *, timeout_s: float) -> TravelTime:
        return await counted(self.failures, self._travel_time(leg, timeout_s))

    async def close(self) -> None:
        """Nothing of its own to close (the shared client is closed by its owner)."""

    async def _travel_time(self, leg: Leg, timeout_s: float) -> TravelTime:
        form = self._form
        url = form.url_template.format(
            origin_lat=f"{leg.origin_lat:.6f}",
            origin_lon=f"{leg.origin_lon:.6f}",
            dest_lat=f"{leg.dest_lat:.6f}",
            dest_lon=f"{leg.dest_lon:.6f}",
            departure=int(leg.at.timestamp()),
        )
        headers: dict[str, str] = {}
        params: dict[str, str] = {}
        if form.key is not None and form.key_in == "header":
            headers[form.key_name] = form.key
        elif form.key is not None and form.key_in == "query":
            params[form.key_name] = form.key
        body = await self._client.get_json(
            self.name, url, params=params or None, headers=headers or None, timeout_s=timeout_s
        )
        raw = plausible.number(self.name, dig(self.name, body, form.duration_path), "duration")
        distance_km = None
        if form.distance_path is not None:
            metres = dig(self.name, body, form.distance_path)
            distance_km = (
                plausible.number(self.name, metres, "distance") * KM_PER[form.distance_unit]
            )
        seconds = raw * SECONDS_PER[form.duration_unit]
        return plausible.travel_time(self.name, leg, seconds, distance_km)
