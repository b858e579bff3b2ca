"""The service's travel time: the provider chain of the ``providers`` settings, asked once
per order beside the feature read, within ``provider_share`` of the /eta deadline.

The seam with the model is one feature name, :data:`FEATURE`: the predictor puts the
chain's answer in each order's feature row under it (a model trained with it uses it; any
other model ignores it and the value is only reported), and every answer says where the
travel time came from (``travel_source``: a provider's name, ``cache``, ``grace`` or
``builtin``). Without providers configured no chain is built and every answer says
``builtin``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import Final

from arrive.clock import Clock, SystemClock
from arrive.errors import SchemaError
from arrive.providers.base import Leg, TravelTime, TravelTimeProvider
from arrive.providers.breaker import BreakerSettings
from arrive.providers.builtin import BuiltinProvider
from arrive.providers.cache import CacheSettings, TravelTimeCache
from arrive.providers.cache_redis import RedisCacheStore
from arrive.providers.cache_store import CacheStore, MemoryCacheStore
from arrive.providers.chain import ProviderChain
from arrive.providers.factory import travel_providers
from arrive.providers.guard import GuardedProvider
from arrive.providers.http import VendorClient
from arrive.providers.retry import RetrySettings
from arrive.providers.settings import BuiltinSettings, ProviderSettings, provider_settings
from arrive.schema.events import OrderCreated
from arrive.serving.settings import ServeSettings

FEATURE: Final = "travel_time_provider_s"
"""The feature row's name of the chain's travel time (agreed with the feature spec)."""

Known = list[TravelTime | Leg | None]
"""Each order's travel time known at once, or its leg still to ask (None: no coordinates)."""
Started = list[TravelTime | None] | asyncio.Future[list[TravelTime | None]]
"""What :meth:`TravelLookup.start` gives: the answers, or the task that will have them."""


class TravelLookup:
    """Each order's travel time from ``chain``, within ``share`` of the caller's budget.

    Args:
        chain: the provider chain (it never fails).
        share: the share of the request's deadline a lookup may take.
        client: the vendors' shared HTTP client, closed by :meth:`aclose`.
    """

    def __init__(self, chain: ProviderChain, share: float, client: VendorClient | None) -> None:
        self.chain = chain
        self.share = share
        self.client = client

    async def times(
        self, orders: Sequence[OrderCreated], deadline_s: float
    ) -> list[TravelTime | None]:
        """Each order's travel time (None when it has no coordinates)."""
        return await self.ask(self.known(orders), deadline_s)

    def known(self, orders: Sequence[OrderCreated]) -> Known:
        """Each order's travel time where it is known at once (a fresh answer of an
        in-process cache; None without coordinates), else its leg, to :meth:`ask`: a warm
        cache answers without a task or a turn of the event loop."""
        found: Known = []
        for order in orders:
            leg = leg_of(order)
            answer = None if leg is None else self.chain.answered_now(leg)
            found.append(leg if answer is None else answer)
        return found

    async def ask(self, found: Known, deadline_s: float) -> list[TravelTime | None]:
        """``found`` with each leg asked of the chain, within the lookup's share of
        ``deadline_s``."""
        budget_s = deadline_s * self.share
        legs = [(i, leg) for i, leg in enumerate(found) if isinstance(leg, Leg)]
        asked = [self.chain.travel_time(leg, timeout_s=budget_s) for _, leg in legs]
        answers: list[TravelTime | None] = [None if isinstance(f, Leg) else f for f in found]
        for (index, _), answer in zip(legs, await asyncio.gather(*asked), strict=True):
            answers[index] = answer
        return answers

    def start(self, orders: Sequence[OrderCreated], deadline_s: float) -> Started:
        """Each order's travel time at once when every one is :meth:`known`, else a task
        asking the rest, to await beside the caller's own work."""
        found = self.known(orders)
        if any(isinstance(leg, Leg) for leg in found):
            return asyncio.ensure_future(self.ask(found, deadline_s))
        return [answer for answer in found if not isinstance(answer, Leg)]

    async def aclose(self) -> None:
        """Stop the cache's background requests, close the adapters and the client."""
        await self.chain.close()
        if self.client is not None:
            await self.client.close()


def leg_of(order: OrderCreated) -> Leg | None:
    """Pickup to drop-off at the order's creation, or None when a coordinate is missing."""
    coords = (order.pickup_lat, order.pickup_lon, order.drop_lat, order.drop_lon)
    if any(value is None for value in coords):
        return None
    try:
        return Leg(*coords, at=order.event_time)  # type: ignore[arg-type]
    except SchemaError:
        return None


def check_providers(
    settings: ServeSettings, environ: Mapping[str, str] | None = None
) -> ProviderSettings:
    """The ``providers`` setting, validated (no IO).

    Raises:
        ConfigError: one line naming the field (``providers.travel.NAME.url: …``) or the
            cache setting.
    """
    found = provider_settings(settings.providers, os.environ if environ is None else environ)
    if found.travel:
        _cache_settings(settings)
    return found


def build_travel(
    settings: ServeSettings,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
) -> TravelLookup | None:
    """The travel lookup of ``settings``, or None when no travel provider is configured.

    Cached answers age by ``clock`` (default the system clock; the demo passes its replay's
    clock); vendor deadlines, breakers and latencies run on the system clock.

    Vendors are tried in the order written, each behind its breaker, retries and hedging
    (:class:`~arrive.providers.guard.GuardedProvider`, a request at most its
    ``timeout_ms``); a ``builtin`` entry, or the UTC built-in estimate, is the last link.

    Raises:
        ConfigError: as :func:`check_providers`.
    """
    found = check_providers(settings, environ)
    if not found.travel:
        return None
    wall = SystemClock()
    data_clock = clock or wall
    client = VendorClient(max_connections=found.max_connections, clock=wall)
    adapters = travel_providers(found, client)
    kinds = list(found.travel.values())
    vendors: list[TravelTimeProvider] = [
        GuardedProvider(
            adapter,
            wall,
            breaker=BreakerSettings(half_open_after_s=settings.provider_breaker_open_s),
            retry=RetrySettings(attempt_timeout_s=kind.timeout_ms / 1000.0),
        )
        for adapter, kind in zip(adapters, kinds, strict=True)
        if not isinstance(kind, BuiltinSettings)
    ]
    builtins = [a for a in adapters if isinstance(a, BuiltinProvider)]
    last = builtins[0] if builtins else BuiltinProvider()
    store = _cache_store(settings, data_clock)
    rescale = last.ratio if settings.provider_cache_rescale else None
    cache = TravelTimeCache(store, data_clock, _cache_settings(settings), rescale=rescale)
    chain = ProviderChain(vendors, last, wall, cache=cache)
    return TravelLookup(chain, settings.provider_share, client)


def _cache_settings(settings: ServeSettings) -> CacheSettings:
    return CacheSettings(
        ttl_s=settings.provider_cache_ttl_s,
        grace_s=settings.provider_cache_grace_s,
        cell_m=settings.provider_cache_cell_m,
        bucket_s=settings.provider_cache_bucket_s,
    )


def _cache_store(settings: ServeSettings, clock: Clock) -> CacheStore:
    if settings.provider_cache_url == "memory":
        return MemoryCacheStore(clock)
    return RedisCacheStore(settings.provider_cache_url)
