"""An Open-Meteo-compatible current-weather API (open-meteo.com, its commercial endpoint,
or a self-hosted instance).

Request: ``GET {url}/v1/forecast?latitude=…&longitude=…&current=temperature_2m,precipitation,
wind_speed_10m&wind_speed_unit=kmh`` (plus ``apikey=…`` for the commercial endpoint).
Answer: ``{"current": {"time": …, "temperature_2m": °C, "precipitation": mm,
"wind_speed_10m": km/h}, "current_units": {…}}``.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from arrive.providers import plausible
from arrive.providers.base import ProviderError, Weather
from arrive.providers.http import VendorClient, counted
from arrive.providers.jsonpath import dig

VARIABLES: Final = ("temperature_2m", "precipitation", "wind_speed_10m")
_UNITS: Final = {"temperature_2m": "°C", "precipitation": "mm", "wind_speed_10m": "km/h"}


class OpenMeteoProvider:
    """Current weather from an Open-Meteo-compatible server at ``url``.

    Args:
        name: the provider's name.
        client: the process's shared :class:`VendorClient`.
        url: base URL, e.g. ``https://api.open-meteo.com``.
        key: API key of the commercial endpoint (sent as ``apikey``), or None.
    """

    def __init__(self, name: str, client: VendorClient, url: str, key: str | None = None) -> None:
        self.name = name
        self.failures: Counter[str] = Counter()
        self._client = client
        self._url = url.rstrip("/") + "/v1/forecast"
        self._key = key

    async def current(self, lat: float, lon: float, *, timeout_s: float) -> Weather:
        return await counted(self.failures, self._current(lat, lon, timeout_s))

    async def close(self) -> None:
        """Nothing of its own to close (the shared client is closed by its owner)."""

    async def _current(self, lat: float, lon: float, timeout_s: float) -> Weather:
        params = {
            "latitude": f"{lat:.5f}",
            "longitude": f"{lon:.5f}",
            "current": ",".join(VARIABLES),
            "wind_speed_unit": "kmh",
        }
        if self._key is not None:
            params["apikey"] = self._key
        body = await self._client.get_json(self.name, self._url, params=params, timeout_s=timeout_s)
        current = dig(self.name, body, ("current",))
        values = [dig(self.name, current, (v,)) for v in VARIABLES]
        units = body.get("current_units") if isinstance(body, dict) else None
        if isinstance(units, dict):
            for variable, unit in _UNITS.items():
                if units.get(variable, unit) != unit:
                    raise ProviderError(
                        self.name, "wrong_shape", f"{variable} in {units[variable]!r:.20}"
                    )
        return plausible.weather(self.name, *values)
