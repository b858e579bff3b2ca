"""An OSRM-compatible routing engine (self-hosted ``osrm-routed`` or any server speaking
its HTTP API v1): the ``route`` or the ``table`` service.

Requests, for a leg from (lat₁, lon₁) to (lat₂, lon₂) (OSRM puts longitude first)::

    GET {url}/route/v1/{profile}/{lon₁},{lat₁};{lon₂},{lat₂}?overview=false&steps=false
    GET {url}/table/v1/{profile}/{lon₁},{lat₁};{lon₂},{lat₂}?sources=0&destinations=1
        &annotations=duration,distance

Answers: ``{"code": "Ok", "routes": [{"duration": s, "distance": m}, ...]}`` (the first
route is the fastest) and ``{"code": "Ok", "durations": [[s]], "distances": [[m]]}``
(``null`` where no route exists). Any other ``code`` is refused.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final, Literal

from arrive.providers import plausible
from arrive.providers.base import Leg, ProviderError, TravelTime
from arrive.providers.http import VendorClient, counted
from arrive.providers.jsonpath import dig

Service = Literal["route", "table"]
SERVICES: Final = ("route", "table")


class OsrmProvider:
    """Travel time from an OSRM-compatible server at ``url`` (no trailing path).

    Args:
        name: the provider's name (the ``source`` of its answers, the metrics label).
        client: the process's shared :class:`VendorClient`.
        url: base URL, e.g. ``http://osrm:5000``.
        profile: routing profile (``driving``, ``car``, ``bike`` … as the server was built).
        service: ``route`` or ``table``.
    """

    def __init__(
        self,
        name: str,
        client: VendorClient,
        url: str,
        profile: str = "driving",
        service: Service = "route",
    ) -> None:
        self.name = name
        self.failures: Counter[str] = Counter()
        self._client = client
        self._base = url.rstrip("/")
        self._profile = profile
        self._service = service

    async def travel_time(self, leg: Leg, *, timeout_s: float) -> TravelTime:
        return await counted(self.failures, self._travel_time(leg, timeout_s))

    async def close(self) -> None:
        """Nothing of its own to close (the shared client is closed by its owner)."""

    async def _travel_time(self, leg: Leg, timeout_s: float) -> TravelTime:
        coords = f"{leg.origin_lon:.6f},{leg.origin_lat:.6f};{leg.dest_lon:.6f},{leg.dest_lat:.6f}"
        url = f"{self._base}/{self._service}/v1/{self._profile}/{coords}"
        if self._service == "route":
            params = {"overview": "false", "steps": "false"}
        else:
            params = {"sources": "0", "destinations": "1", "annotations": "duration,distance"}
        body = await self._client.get_json(self.name, url, params=params, timeout_s=timeout_s)
        _check_code(self.name, body)
        seconds, metres = self._pick(body)
        distance_km = None if metres is None else plausible.number(self.name, metres, "distance")
        return plausible.travel_time(
            self.name, leg, seconds, None if distance_km is None else distance_km / 1000.0
        )

    def _pick(self, body: Any) -> tuple[Any, Any]:
        if self._service == "route":
            route = dig(self.name, body, ("routes", 0))
            if not isinstance(route, dict):
                raise ProviderError(self.name, "wrong_shape", "routes[0] is not an object")
            return dig(self.name, route, ("duration",)), route.get("distance")
        seconds = dig(self.name, body, ("durations", 0, 0))
        distances = body.get("distances")
        metres = dig(self.name, distances, (0, 0)) if distances is not None else None
        return seconds, metres


def _check_code(provider: str, body: Any) -> None:
    if not isinstance(body, dict):
        raise ProviderError(provider, "wrong_shape", "the answer is not a JSON object")
    code = body.get("code")
    if code != "Ok":
        reason = "empty" if code in ("NoRoute", "NoSegment", "NoTable") else "wrong_shape"
        raise ProviderError(provider, reason, f"code {code!r:.40}")
