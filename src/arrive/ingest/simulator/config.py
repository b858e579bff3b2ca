"""The parameters of a simulation run."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Any, Final

from arrive.errors import ConfigError

MAX_DAYS: Final = 366
MAX_ORDERS_PER_DAY: Final = 1_000_000
MAX_MARKETS: Final = 12


@dataclasses.dataclass(frozen=True)
class RegimeChange:
    """An opt-in drift: from the start of day ``day`` (0 = the first simulated day) on,
    every ride takes ``travel_slowdown`` longer (0.3: 30 % longer), in every market.

    Think of road works closing an artery: couriers are slower, while the traffic levels
    the orders carry (``traffic``) and the weather stay what they were, so no input of a
    model shows the change; only the delivery times do. Orders created before the change
    are untouched (same seed, same bytes as without it).
    """

    day: int
    travel_slowdown: float

    def __post_init__(self) -> None:
        _check_int("regime_change.day", self.day, 1, MAX_DAYS)
        _check_range("regime_change.travel_slowdown", self.travel_slowdown, 0.01, 1.0)

    @property
    def start_s(self) -> float:
        """Seconds from the start of the simulation to the change."""
        return self.day * 86_400.0


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. The defaults are a week of one mid-size city (~112k orders).

    Attributes:
        seed: seed of every random draw; the same seed gives the same output.
        days: number of simulated days, starting at midnight UTC of ``start``.
        orders_per_day: orders per day over all markets (the exact total is
            ``orders_per_day × days``, spread by hour, weekday and weather).
        markets: number of cities (1 to 12).
        start: first simulated day.
        ping_interval_s: period of a courier's location pings (status changes ping too).
        snapshot_interval_s: period of the market snapshots.
        provider_observations: also record, per order, what the simulated travel-time
            vendor answered for its store→drop leg when its ETA was quoted
            (``travel_time_observation`` events; see :mod:`.vendor`).
        regime_change: a drift from a given day on (see :class:`RegimeChange`); None:
            the same marketplace throughout.

    Raises:
        ConfigError: a parameter is out of range (the message names it).
    """

    seed: int = 0
    days: int = 7
    orders_per_day: int = 16_000
    markets: int = 1
    start: date = date(2025, 3, 3)
    ping_interval_s: float = 400.0
    snapshot_interval_s: float = 300.0
    provider_observations: bool = False
    regime_change: RegimeChange | None = None

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("days", self.days, 1, MAX_DAYS)
        _check_int("orders_per_day", self.orders_per_day, 1, MAX_ORDERS_PER_DAY)
        _check_int("markets", self.markets, 1, MAX_MARKETS)
        _check_range("ping_interval_s", self.ping_interval_s, 30.0, 3600.0)
        _check_range("snapshot_interval_s", self.snapshot_interval_s, 60.0, 3600.0)
        if not isinstance(self.provider_observations, bool):
            raise ConfigError(
                f"provider_observations: must be true or false (got {self.provider_observations!r})"
            )
        if self.regime_change is not None and self.regime_change.day >= self.days:
            raise ConfigError(
                f"regime_change.day: must be before the last day, < {self.days} "
                f"(got {self.regime_change.day})"
            )
        if isinstance(self.start, datetime) or not isinstance(self.start, date):
            raise ConfigError(f"start: must be a date (got {self.start!r})")

    @property
    def start_time(self) -> datetime:
        """Midnight UTC of the first simulated day."""
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def horizon_s(self) -> float:
        """Length of the period in which orders are placed, in seconds."""
        return self.days * 86_400.0

    def as_dict(self) -> dict[str, Any]:
        """The parameters as JSON-ready values."""
        values = dataclasses.asdict(self)
        values["start"] = self.start.isoformat()
        if self.regime_change is None:  # absent, as before the scenario existed
            del values["regime_change"]
        return values


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: must be a whole number (got {value!r})")
    _check_range(name, value, low, high)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}: must be a number (got {value!r})")
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low:g} and {high:g} (got {value:g})")
