"""One provider guarded: circuit breaker, retries inside a budget, Retry-After, hedging.

:class:`GuardedProvider` wraps any :class:`~arrive.providers.base.TravelTimeProvider` and is
one itself (same ``name``); :class:`GuardedWeather` does the same for a
:class:`~arrive.providers.base.WeatherProvider`. Both run their calls through a
:class:`Guard`. A call:

1. is refused at once with ``rate_limited`` while a 429's Retry-After runs (no request is
   sent before it ends), and with ``breaker_open`` while the breaker is open;
2. sends a request of at most ``attempt_timeout_s`` (and never past the call's
   ``timeout_s``); once the vendor's observed p95 has passed without an answer, a second,
   hedged request goes out if the hedge budget allows and the breaker is still closed
   (never while half-open, nor once the breaker has opened), and the first answer wins;
3. on a retryable failure (timeout, connection, 5xx, 429) waits a jittered back-off (or the
   Retry-After) and tries again, if the retry budget has a token, the deadline room and
   the breaker is still closed.

Every request is counted (``arrive_provider_calls_total``, ``call_seconds``, ``errors_total``
by reason, ``retries_total``, ``hedges_total``; the breaker's state in ``breaker_state``,
the half-open probes it let through in ``probes_total``, and the requests sent while it
was not closed in ``calls_not_closed_total``: the probes, if nothing else slips through).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from arrive.clock import Clock
from arrive.providers import metrics
from arrive.providers.base import (
    Leg,
    ProviderError,
    TravelTime,
    TravelTimeProvider,
    Weather,
    WeatherProvider,
)
from arrive.providers.breaker import BreakerSettings, BreakerState, CircuitBreaker, Permit
from arrive.providers.retry import (
    HedgeSettings,
    LatencyQuantile,
    RetrySettings,
    TokenBudget,
    backoff_s,
)

RETRYABLE = frozenset({"timeout", "connection", "http_5xx", "rate_limited"})
"""Failures worth another request: the vendor may answer the next one."""
NOT_A_FAULT = frozenset({"rate_limited", "http_4xx", "breaker_open", "budget"})
"""Failures that say nothing of the vendor's health: the breaker does not count them."""


T = TypeVar("T")
Request = Callable[[float], Awaitable[T]]
"""One request to the vendor, given its timeout in seconds."""


class GuardedProvider:
    """A travel-time provider behind a :class:`Guard` (module docstring)."""

    def __init__(
        self,
        inner: TravelTimeProvider,
        clock: Clock,
        *,
        breaker: BreakerSettings | None = None,
        retry: RetrySettings | None = None,
        hedge: HedgeSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.guard = Guard(inner.name, clock, breaker=breaker, retry=retry, hedge=hedge, rng=rng)
        self.breaker = self.guard.breaker
        self.latency = self.guard.latency

    async def travel_time(self, leg: Leg, *, timeout_s: float) -> TravelTime:
        return await self.guard.call(
            lambda attempt_s: self.inner.travel_time(leg, timeout_s=attempt_s), timeout_s
        )

    async def close(self) -> None:
        await self.inner.close()


class GuardedWeather:
    """A weather provider behind a :class:`Guard` (module docstring)."""

    def __init__(
        self,
        inner: WeatherProvider,
        clock: Clock,
        *,
        breaker: BreakerSettings | None = None,
        retry: RetrySettings | None = None,
        hedge: HedgeSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.guard = Guard(inner.name, clock, breaker=breaker, retry=retry, hedge=hedge, rng=rng)

    async def current(self, lat: float, lon: float, *, timeout_s: float) -> Weather:
        return await self.guard.call(
            lambda attempt_s: self.inner.current(lat, lon, timeout_s=attempt_s), timeout_s
        )

    async def close(self) -> None:
        await self.inner.close()


class Guard:
    """Breaker, retries, Retry-After and hedging for the vendor ``name`` (module docstring);
    ``rng`` draws the back-off jitter."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        *,
        breaker: BreakerSettings | None = None,
        retry: RetrySettings | None = None,
        hedge: HedgeSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.retry = retry or RetrySettings()
        self.hedge = hedge or HedgeSettings()
        self.rng = rng or random.Random()
        gauge = metrics.BREAKER_STATE.labels(self.name)
        gauge.set(BreakerState.CLOSED)
        self.breaker = CircuitBreaker(breaker or BreakerSettings(), clock, gauge.set)
        self.retries = TokenBudget(self.retry.budget_ratio, self.retry.budget_reserve)
        self.hedges = TokenBudget(self.hedge.budget_ratio, self.hedge.budget_reserve)
        self.latency = LatencyQuantile(
            self.hedge.quantile, self.hedge.samples, self.hedge.min_samples
        )
        self._not_before = float("-inf")

    async def call(self, request: Request[T], timeout_s: float) -> T:
        """``request``'s answer within ``timeout_s``, or the :class:`ProviderError` of the
        last try (or of the refusal)."""
        deadline = self.clock.monotonic() + timeout_s
        self.retries.deposit()
        self.hedges.deposit()
        retry = 0
        while True:
            try:
                return await self._attempt(request, deadline)
            except ProviderError as exc:
                delay = self._retry_delay(exc, retry, deadline)
                if delay is None:  # without the attempts' frames (they hold the tasks that
                    # hold it): no reference cycle left for the garbage collector
                    raise exc.with_traceback(None) from exc.__cause__
            metrics.RETRIES.labels(self.name).inc()
            await asyncio.sleep(delay)
            retry += 1

    def _retry_delay(self, exc: ProviderError, retry: int, deadline: float) -> float | None:
        """How long to wait before retrying after ``exc``, or None not to retry."""
        if exc.reason not in RETRYABLE or retry + 1 >= self.retry.attempts:
            return None
        if self.breaker.state is not BreakerState.CLOSED:
            return None  # the failure opened it: no retry, the vendor's error stands
        now = self.clock.monotonic()
        delay = max(backoff_s(self.retry, retry, self.rng), self._not_before - now)
        if now + delay >= deadline or not self.retries.withdraw():
            return None
        return delay

    async def _attempt(self, request: Request[T], deadline: float) -> T:
        now = self.clock.monotonic()
        if now < self._not_before:
            raise self._refused("rate_limited", self._not_before - now)
        permit = self.breaker.allow()
        if permit is None:
            raise self._refused("breaker_open")
        if permit.probe:
            metrics.PROBES.labels(self.name).inc()
        p95 = self.latency.value()
        if permit.probe or not self.hedge.enabled or p95 is None or now + p95 >= deadline:
            return await self._request(request, deadline, permit)
        first = asyncio.ensure_future(self._request(request, deadline, permit))
        try:
            done, _ = await asyncio.wait({first}, timeout=p95)
            if done or not self._may_hedge():
                return await first
        except asyncio.CancelledError:
            first.cancel()
            raise
        metrics.HEDGES.labels(self.name).inc()
        second = asyncio.ensure_future(self._request(request, deadline, permit))
        return await _first_answer(first, second)

    def _may_hedge(self) -> bool:
        """Whether a hedge may go out now: the breaker still closed (it may have opened
        while the first request ran) and a token in the hedge budget."""
        return self.breaker.state is BreakerState.CLOSED and self.hedges.withdraw()

    async def _request(self, request: Request[T], deadline: float, permit: Permit) -> T:
        """One request to the vendor, counted and reported to the breaker with ``permit``;
        refused if the breaker opened since the permit was given (a hedge, a task started
        late)."""
        if self.breaker.outdated(permit):
            raise self._refused("breaker_open")
        started = self.clock.monotonic()
        timeout_s = max(0.0, min(self.retry.attempt_timeout_s, deadline - started))
        metrics.CALLS.labels(self.name).inc()
        if self.breaker.state is not BreakerState.CLOSED:
            metrics.CALLS_NOT_CLOSED.labels(self.name).inc()
        timed_out = False
        try:
            async with asyncio.timeout(timeout_s):
                answer = await request(timeout_s)
        except TimeoutError:
            timed_out = True
        except ProviderError as exc:
            raise self._failed(exc, permit) from exc.__cause__
        except asyncio.CancelledError:
            self.breaker.abandoned(permit)
            raise
        finally:
            metrics.CALL_SECONDS.labels(self.name).observe(self.clock.monotonic() - started)
        if timed_out:  # raised here, not in the handler: no __context__ back to the timeout's task
            raise self._failed(ProviderError(self.name, "timeout", f"{timeout_s:.3f} s"), permit)
        self.breaker.succeeded(permit)
        self.latency.add(self.clock.monotonic() - started)
        return answer

    def _failed(self, exc: ProviderError, permit: Permit) -> ProviderError:
        metrics.ERRORS.labels(self.name, exc.reason).inc()
        if exc.retry_after_s is not None:
            self._not_before = max(self._not_before, self.clock.monotonic() + exc.retry_after_s)
        if exc.reason not in NOT_A_FAULT:
            self.breaker.failed(permit)
        return exc

    def _refused(self, reason: str, retry_after_s: float | None = None) -> ProviderError:
        metrics.ERRORS.labels(self.name, reason).inc()
        return ProviderError(self.name, reason, retry_after_s=retry_after_s)


async def _first_answer(*requests: asyncio.Future[T]) -> T:
    """The first of ``requests`` to answer (the others cancelled), or the last failure."""
    pending = set(requests)
    failure: BaseException | None = None
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for request in done:
                if request.exception() is None:
                    return request.result()
                failure = request.exception()
    finally:
        for request in pending:
            request.cancel()
        for request in pending:
            with contextlib.suppress(asyncio.CancelledError, ProviderError):
                await request
    assert failure is not None
    raise failure
