"""The pieces of retrying and hedging that hold no IO: a token budget, jittered back-off,
the observed latency quantile.

A :class:`TokenBudget` caps extra requests (retries, hedges) to a share of the calls, as
gRPC's retry throttling and Finagle's ``RetryBudget`` do: every call deposits ``ratio`` of
a token (up to ``cap``), every extra request withdraws a whole one, and the bucket starts
with ``reserve`` tokens. Over ``n`` calls, at most ``reserve + ratio * n`` extra requests
go out, however the vendor behaves.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from arrive.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """Retries: at most ``attempts`` requests per call, back-off ``base_s * 2**n`` capped at
    ``max_delay_s`` with full jitter, each request given at most ``attempt_timeout_s``;
    retries within a budget of ``budget_ratio`` per call (``budget_reserve`` at start)."""

    attempts: int = 3
    base_s: float = 0.02
    max_delay_s: float = 1.0
    attempt_timeout_s: float = 1.0
    budget_ratio: float = 0.05
    budget_reserve: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("retry.attempts must be at least 1")
        if self.base_s < 0 or self.max_delay_s < 0 or self.attempt_timeout_s <= 0:
            raise ConfigError("retry.base_s, max_delay_s and attempt_timeout_s must be positive")
        if not 0 <= self.budget_ratio <= 1 or self.budget_reserve < 0:
            raise ConfigError("retry.budget_ratio must be in [0, 1], budget_reserve >= 0")


@dataclass(frozen=True, slots=True)
class HedgeSettings:
    """Hedging: a second request when the first has run past the observed ``quantile`` of
    latency (known after ``min_samples`` answers), within a budget of ``budget_ratio``
    hedges per call. ``enabled=False`` sends none."""

    enabled: bool = True
    quantile: float = 0.95
    min_samples: int = 50
    samples: int = 512
    budget_ratio: float = 0.05
    budget_reserve: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ConfigError("hedge.quantile must be in (0, 1)")
        if self.min_samples < 1 or self.samples < self.min_samples:
            raise ConfigError("hedge.min_samples must be at least 1 and at most hedge.samples")
        if not 0 <= self.budget_ratio <= 1 or self.budget_reserve < 0:
            raise ConfigError("hedge.budget_ratio must be in [0, 1], budget_reserve >= 0")


class TokenBudget:
    """Extra requests allowed: ``ratio`` of a token per call, starting at ``reserve``,
    never more than ``cap`` (default ``max(reserve, 10)``)."""

    def __init__(self, ratio: float, reserve: float, cap: float | None = None) -> None:
        self.ratio = ratio
        self.cap = cap if cap is not None else max(reserve, 10.0)
        self.tokens = reserve

    def deposit(self) -> None:
        """One call was made."""
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        """Take one token for an extra request; False when the budget is spent."""
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def backoff_s(settings: RetrySettings, retry: int, rng: random.Random) -> float:
    """Delay before retry number ``retry`` (0 for the first): full jitter over
    ``min(max_delay_s, base_s * 2**retry)``."""
    return rng.uniform(0.0, min(settings.max_delay_s, settings.base_s * 2.0**retry))


class LatencyQuantile:
    """The ``quantile`` of the last ``samples`` latencies; None before ``min_samples``."""

    def __init__(self, quantile: float, samples: int, min_samples: int) -> None:
        self.quantile = quantile
        self.min_samples = min_samples
        self._seen: deque[float] = deque(maxlen=samples)
        self._cached: float | None = None
        self._stale = 0

    def add(self, seconds: float) -> None:
        self._seen.append(seconds)
        self._stale += 1

    def value(self) -> float | None:
        if len(self._seen) < self.min_samples:
            return None
        if self._cached is None or self._stale >= 16:
            ordered = sorted(self._seen)
            self._cached = ordered[min(len(ordered) - 1, int(self.quantile * len(ordered)))]
            self._stale = 0
        return self._cached
