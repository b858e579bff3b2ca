"""The provider chain: cache → provider A → provider B → cached value within grace →
the built-in estimate, all inside the caller's deadline.

:class:`ProviderChain` is a :class:`~arrive.providers.base.TravelTimeProvider` that never
fails. A call with ``timeout_s``:

1. answers a fresh cached value (``source="cache"``), or one within grace (``"grace"``)
   while a background request refreshes it;
2. on a miss, asks the vendor links in order (each a
   :class:`~arrive.providers.guard.GuardedProvider` in production), one request per key
   however many callers miss it at once. Each link gets ``share`` of the time left before
   the vendor deadline (``1 - reserve`` of the budget), the last link all of it: a link that
   runs past its share is abandoned and the next one asked. The request that fills a
   missed key outlives its caller: it runs until ``refresh_timeout_s`` (or the caller's
   vendor deadline, if later), while the caller waits only until its own vendor deadline,
   so a vendor slower than the budget still fills the cache for later callers. At most
   ``max_fills`` such requests run at once; a miss past that gets no vendor request
   (counted as ``budget``);
3. if no vendor answered, a cached value within grace, if any;
4. else the ``last`` link, which must not fail (the built-in estimate), with what is left.

Every answer says where it came from (``source``), counted in
``arrive_provider_answers_total{source}``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from arrive.clock import Clock
from arrive.errors import ConfigError
from arrive.providers import metrics
from arrive.providers.base import Leg, ProviderError, TravelTime, TravelTimeProvider
from arrive.providers.cache import TravelTimeCache


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """How the chain splits its budget (module docstring); ``refresh_timeout_s`` bounds a
    background refresh, which no caller waits for."""

    share: float = 0.5
    reserve: float = 0.1
    refresh_timeout_s: float = 2.0
    max_fills: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ConfigError(f"chain.share: {self.share} must be in (0, 1]")
        if not 0 <= self.reserve < 1:
            raise ConfigError(f"chain.reserve: {self.reserve} must be in [0, 1)")
        if not (self.refresh_timeout_s > 0 and math.isfinite(self.refresh_timeout_s)):
            raise ConfigError(f"chain.refresh_timeout_s: {self.refresh_timeout_s} must be > 0")
        if self.max_fills < 1:
            raise ConfigError(f"chain.max_fills: {self.max_fills} must be at least 1")


class ProviderChain:
    """``links`` in order, then ``cache``'s value within grace, then ``last`` (module doc)."""

    name = "chain"

    def __init__(
        self,
        links: Sequence[TravelTimeProvider],
        last: TravelTimeProvider,
        clock: Clock,
        *,
        cache: TravelTimeCache | None = None,
        settings: ChainSettings | None = None,
    ) -> None:
        self.links = tuple(links)
        self.last = last
        self.clock = clock
        self.cache = cache
        self.settings = settings or ChainSettings()

    async def travel_time(self, leg: Leg, *, timeout_s: float) -> TravelTime:
        started = self.clock.monotonic()
        vendor_deadline = started + timeout_s * (1.0 - self.settings.reserve)
        answer = await self._cached_or_vendor(leg, vendor_deadline)
        if answer is None and self.cache is not None:
            answer = await _or_none(self.cache.stale(leg), self._left(started + timeout_s))
        if answer is None:
            answer = await self.last.travel_time(leg, timeout_s=self._left(started + timeout_s))
        metrics.ANSWERS.labels(answer.source).inc()
        return answer

    def answered_now(self, leg: Leg) -> TravelTime | None:
        """Step 1 without waiting: a fresh answer of an in-process cache, counted as
        :meth:`travel_time` counts it; None: ask :meth:`travel_time`."""
        answer = None if self.cache is None else self.cache.fresh_now(leg)
        if answer is not None:
            metrics.ANSWERS.labels(answer.source).inc()
        return answer

    async def close(self) -> None:
        for link in (*self.links, self.last):
            await link.close()
        if self.cache is not None:
            await self.cache.close()

    async def _cached_or_vendor(self, leg: Leg, deadline: float) -> TravelTime | None:
        cache = self.cache
        if cache is None:
            return await _or_none(self._vendor(leg, deadline), self._left(deadline))
        try:
            async with asyncio.timeout(self._left(deadline)):
                found = await cache.lookup(leg)
        except TimeoutError:
            return None  # the store is slower than the budget: a miss, no vendor time left
        if found.state == "grace":
            cache.refresh(leg, lambda: self._vendor(leg, self._refresh_deadline()))
        if found.answer is not None:
            return found.answer
        if cache.in_flight(leg) is None and cache.flights >= self.settings.max_fills:
            metrics.ERRORS.labels(self.name, "budget").inc()
            return None  # too many fills running already: grace or the built-in answers
        fill_deadline = max(deadline, self._refresh_deadline())
        fill = cache.fill(leg, lambda: self._vendor(leg, fill_deadline))
        return await _or_none(fill, self._left(deadline))

    def _left(self, deadline: float) -> float:
        return max(0.0, deadline - self.clock.monotonic())

    def _refresh_deadline(self) -> float:
        return self.clock.monotonic() + self.settings.refresh_timeout_s

    async def _vendor(self, leg: Leg, deadline: float) -> TravelTime:
        """The first vendor link's answer within its share of the time to ``deadline``."""
        failure = ProviderError(self.name, "timeout", "no time left for a vendor")
        for index, link in enumerate(self.links):
            left_s = deadline - self.clock.monotonic()
            if left_s <= 0:
                break
            last = index == len(self.links) - 1
            share_s = left_s if last else left_s * self.settings.share
            try:
                async with asyncio.timeout(share_s):
                    return await link.travel_time(leg, timeout_s=share_s)
            except TimeoutError:
                failure = ProviderError(link.name, "timeout", f"past its share ({share_s:.3f} s)")
                metrics.ERRORS.labels(link.name, "timeout").inc()
            except ProviderError as exc:
                failure = exc
        try:
            raise failure
        finally:
            del failure  # else this frame and its traceback hold each other: garbage per call


async def _or_none(pending: Awaitable[TravelTime | None], timeout_s: float) -> TravelTime | None:
    """``pending``'s answer, or None when it fails or takes longer than ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            return await pending
    except (TimeoutError, ProviderError):
        return None
