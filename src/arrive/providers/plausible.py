"""Checks of a vendor's numbers before they become a :class:`~arrive.providers.base.TravelTime`
or :class:`~arrive.providers.base.Weather`: a value that fails raises
:class:`~arrive.providers.base.ProviderError` with the reason, so it never reaches a feature.

A travel time is plausible when a courier could ride the leg's great-circle distance in
it at between :data:`MIN_KMH` and :data:`MAX_KMH`, give or take :data:`SLACK_S` (waits at
lights, a detour, a ferry): 2 km may take up to 2 h, never 24 h.
"""

from __future__ import annotations

import math
from typing import Final

from arrive.providers.base import Leg, ProviderError, TravelTime, Weather

MIN_KMH: Final = 2.0
"""Slower than this over the whole leg is absurd (slower than walking in a jam)."""
MAX_KMH: Final = 200.0
"""Faster than this is absurd for a courier."""
SLACK_S: Final = 3600.0
"""Added to the slow bound (a short leg may still wait long)."""
ROAD_FACTOR_MAX: Final = 10.0
"""A road distance over this many times the great-circle one (plus 5 km) is absurd."""

TEMPERATURE_C: Final = (-90.0, 60.0)
PRECIPITATION_MM_MAX: Final = 500.0
WIND_KMH_MAX: Final = 500.0


def max_seconds(distance_km: float) -> float:
    """The longest plausible travel time of a leg ``distance_km`` long (great circle)."""
    return distance_km / MIN_KMH * 3600.0 + SLACK_S


def min_seconds(distance_km: float) -> float:
    """The shortest plausible travel time of a leg ``distance_km`` long (great circle)."""
    return distance_km / MAX_KMH * 3600.0


def finite(provider: str, value: object, what: str) -> float:
    """``value`` as a finite float, or the ProviderError saying why not."""
    if value is None:
        raise ProviderError(provider, "empty", f"{what} is null")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProviderError(provider, "wrong_shape", f"{what} is not a number: {value!r:.40}")
    try:
        result = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise ProviderError(provider, "absurd", f"{what} has {len(str(value))} digits") from None
    if not math.isfinite(result):
        raise ProviderError(provider, "not_finite", f"{what} is {result}")
    return result


def number(provider: str, value: object, what: str) -> float:
    """``value`` as a finite, non-negative float, or the ProviderError saying why not."""
    result = finite(provider, value, what)
    if result < 0:
        raise ProviderError(provider, "negative", f"{what} is {result:g}")
    return result


def travel_time(provider: str, leg: Leg, seconds: object, distance_km: object = None) -> TravelTime:
    """The validated answer for ``leg``: ``seconds`` and the optional road ``distance_km``.

    Raises:
        ProviderError: a value is missing, not a number, not finite, negative or absurd.
    """
    duration = number(provider, seconds, "duration")
    crow_km = leg.great_circle_km
    if not min_seconds(crow_km) <= duration <= max_seconds(crow_km):
        raise ProviderError(provider, "absurd", f"{duration:g} s for {crow_km:.2f} km")
    road_km = None if distance_km is None else number(provider, distance_km, "distance")
    if road_km is not None and road_km > crow_km * ROAD_FACTOR_MAX + 5.0:
        raise ProviderError(provider, "absurd", f"{road_km:g} km of road for {crow_km:.2f} km")
    return TravelTime(seconds=duration, source=provider, distance_km=road_km)


def weather(provider: str, temperature: object, precipitation: object, wind: object) -> Weather:
    """The validated current weather.

    Raises:
        ProviderError: a value is missing, not a number, not finite, negative (precipitation,
            wind) or outside what Earth's weather does.
    """
    celsius = finite(provider, temperature, "temperature")
    low, high = TEMPERATURE_C
    if not low <= celsius <= high:
        raise ProviderError(provider, "absurd", f"temperature {celsius:g} °C")
    rain = number(provider, precipitation, "precipitation")
    kmh = number(provider, wind, "wind speed")
    if rain > PRECIPITATION_MM_MAX or kmh > WIND_KMH_MAX:
        raise ProviderError(provider, "absurd", f"precipitation {rain:g} mm, wind {kmh:g} km/h")
    return Weather(temperature_c=celsius, precipitation_mm=rain, wind_kmh=kmh, source=provider)
