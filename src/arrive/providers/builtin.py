"""The built-in estimate, the last link of every chain: great-circle distance × the
detour factor over the speed of the leg's local hour (:mod:`arrive.features.travel`'s
table, the one the ``travel_estimate_s`` feature uses). It does no IO and cannot fail."""

from __future__ import annotations

from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from arrive.features import travel
from arrive.providers.base import Leg, TravelTime

NAME: Final = "builtin"


class BuiltinProvider:
    """Travel time from the speed-by-hour table, at the hour of ``timezone``.

    Args:
        timezone: the market's IANA timezone (the table is by local hour).
        name: the provider's name (``builtin``: the ``source`` its answers carry).
    """

    def __init__(self, timezone: str = "UTC", name: str = NAME) -> None:
        self.name = name
        self._zone = ZoneInfo(timezone)

    async def travel_time(self, leg: Leg, *, timeout_s: float) -> TravelTime:
        return self.estimate(leg)

    def estimate(self, leg: Leg) -> TravelTime:
        """The estimate of ``leg`` (synchronous: the chain's last link needs no await)."""
        hour = leg.at.astimezone(self._zone).hour
        seconds = travel.estimate_s(leg.great_circle_km, hour)
        return TravelTime(seconds=float(seconds or 0.0), source=self.name)

    def ratio(self, leg: Leg, km: float, departs: datetime) -> float:
        """The estimate of ``leg`` over that of a leg of ``km`` leaving at ``departs``: what
        carries a travel time answered for that leg over to ``leg`` (the cache's
        :class:`~arrive.providers.cache.Rescale`); 1 when either estimate is 0."""
        asked = self.estimate(leg).seconds
        cached = travel.estimate_s(km, departs.astimezone(self._zone).hour) or 0.0
        return asked / cached if asked > 0 and cached > 0 else 1.0

    async def close(self) -> None:
        """Nothing to close."""
