"""Adapters from their settings: one explicit table keyed by ``kind``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from arrive.providers import jsonpath
from arrive.providers.base import TravelTimeProvider, WeatherProvider
from arrive.providers.builtin import BuiltinProvider
from arrive.providers.generic import GenericFormat, GenericJsonProvider
from arrive.providers.http import VendorClient
from arrive.providers.openmeteo import OpenMeteoProvider
from arrive.providers.osrm import OsrmProvider
from arrive.providers.settings import (
    BuiltinSettings,
    HttpJsonSettings,
    OpenMeteoSettings,
    OsrmSettings,
    ProviderSettings,
)


def _osrm(name: str, s: OsrmSettings, client: VendorClient) -> TravelTimeProvider:
    return OsrmProvider(name, client, s.url, s.profile, s.service)


def _http_json(name: str, s: HttpJsonSettings, client: VendorClient) -> TravelTimeProvider:
    form = GenericFormat(
        url_template=s.url,
        duration_path=jsonpath.parse(s.duration_path, "duration_path"),
        duration_unit=s.duration_unit,
        distance_path=None
        if s.distance_path is None
        else jsonpath.parse(s.distance_path, "distance_path"),
        distance_unit=s.distance_unit,
        key=s.key,
        key_in=s.key_in,
        key_name=s.key_name,
    )
    return GenericJsonProvider(name, client, form)


def _builtin(name: str, s: BuiltinSettings, client: VendorClient) -> TravelTimeProvider:
    return BuiltinProvider(s.timezone, name)


TRAVEL_BUILDERS: Final[dict[type[Any], Callable[[str, Any, VendorClient], TravelTimeProvider]]] = {
    OsrmSettings: _osrm,
    HttpJsonSettings: _http_json,
    BuiltinSettings: _builtin,
}


def travel_providers(settings: ProviderSettings, client: VendorClient) -> list[TravelTimeProvider]:
    """The travel-time adapters, in the order configured, sharing ``client``."""
    return [TRAVEL_BUILDERS[type(s)](name, s, client) for name, s in settings.travel.items()]


def weather_providers(settings: ProviderSettings, client: VendorClient) -> list[WeatherProvider]:
    """The weather adapters, in the order configured, sharing ``client``."""
    return [_open_meteo(name, s, client) for name, s in settings.weather.items()]


def _open_meteo(name: str, s: OpenMeteoSettings, client: VendorClient) -> WeatherProvider:
    return OpenMeteoProvider(name, client, s.url, s.key)
