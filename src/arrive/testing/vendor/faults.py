"""The faults the simulated vendor injects: set at start (command options) and changed
at run time (``POST /_faults``). Each request draws one outcome: a fault with its rate,
else a good answer; the rate limit and the latency apply on top."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from arrive.clock import Clock
from arrive.errors import ConfigError

#: Outcomes a request can be given instead of a good answer, in drawing order.
KINDS: Final = (
    "error",  # 503
    "client_error",  # 400 with the format's error body
    "timeout",  # no answer for HOLD_S
    "garbage",  # 200 with a body that is not JSON
    "empty",  # 200 with no body
    "negative",  # a negative duration / precipitation
    "nan",  # NaN where a number belongs
    "inf",  # Infinity where a number belongs
    "absurd",  # a duration of 30 days / 95 °C
    "wrong_shape",  # valid JSON of another shape
)
HOLD_S: Final = 30.0


@dataclass(frozen=True)
class Faults:
    """Fault rates (each in [0, 1], summing to at most 1), the added latency and the rate
    limit (requests per second; 0: none)."""

    latency_ms: float = 0.0
    rate_limit_per_s: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)

    def updated(self, changes: dict[str, Any]) -> Faults:
        """These faults with ``changes`` applied: ``latency_ms``, ``rate_limit_per_s`` and
        ``<kind>_rate`` keys; ``{"clear": true}`` first resets everything.

        Raises:
            ConfigError: an unknown key or a value out of range (the message names it).
        """
        base = Faults() if changes.get("clear") else self
        rates = dict(base.rates)
        scalars: dict[str, float] = {}
        for key, value in changes.items():
            if key == "clear":
                continue
            number = _number(key, value)
            if key in {f.name for f in fields(Faults)} - {"rates"}:
                scalars[key] = number
            elif key.endswith("_rate") and key[: -len("_rate")] in KINDS:
                if number > 1:
                    raise ConfigError(f"{key}: a rate is in [0, 1] (got {number:g})")
                rates[key[: -len("_rate")]] = number
            else:
                known = ", ".join(["latency_ms", "rate_limit_per_s", *(f"{k}_rate" for k in KINDS)])
                raise ConfigError(f"{key}: unknown fault (known: {known})")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ConfigError(f"rates: the fault rates sum to {sum(rates.values()):g}, over 1")
        return replace(base, rates={k: v for k, v in rates.items() if v > 0}, **scalars)

    def as_dict(self) -> dict[str, float]:
        """The faults as ``POST /_faults`` takes them."""
        out = {"latency_ms": self.latency_ms, "rate_limit_per_s": self.rate_limit_per_s}
        return out | {f"{k}_rate": self.rates.get(k, 0.0) for k in KINDS}


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"{key}: must be a number ≥ 0 (got {value!r})")
    return float(value)


class FaultPlan:
    """The faults in force, the draw of each request's outcome and the rate limiter."""

    def __init__(self, faults: Faults, clock: Clock, seed: int | None = None) -> None:
        self.faults = faults
        self._clock = clock
        self._random = random.Random(seed)
        self._tokens = _burst(faults.rate_limit_per_s)
        self._refilled = clock.monotonic()

    def update(self, changes: dict[str, Any]) -> Faults:
        """Apply ``changes`` (see :meth:`Faults.updated`); the faults now in force."""
        self.faults = self.faults.updated(changes)
        self._tokens = _burst(self.faults.rate_limit_per_s)
        self._refilled = self._clock.monotonic()
        return self.faults

    def draw(self) -> str | None:
        """The fault this request gets, or None for a good answer."""
        point = self._random.random()
        for kind in KINDS:
            point -= self.faults.rates.get(kind, 0.0)
            if point < 0:
                return kind
        return None

    def retry_after_s(self) -> float | None:
        """None when the request may pass the rate limit (a token taken), else the seconds
        until the next token."""
        limit = self.faults.rate_limit_per_s
        if limit <= 0:
            return None
        now = self._clock.monotonic()
        self._tokens = min(_burst(limit), self._tokens + (now - self._refilled) * limit)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / limit


def _burst(limit: float) -> float:
    """Tokens the bucket holds: a second's worth, and at least one request."""
    return max(limit, 1.0) if limit > 0 else 0.0
