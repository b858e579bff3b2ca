"""What the simulated vendor answers: travel times and weather from the traffic and
weather of the simulated marketplace in a data directory.

The directory's ``import_summary.json`` holds the simulation's seed and parameters, which
fix its world, weather and traffic (:func:`arrive.ingest.simulator.run.environment`), so
the vendor answers from exactly the congestion and weather the orders were simulated
under, with the formula of :mod:`arrive.ingest.simulator.vendor` (the one the simulator's
``--provider-observations`` records too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Final

import numpy as np

from arrive.datadir import SUMMARY_FILE
from arrive.errors import InputFileError
from arrive.geo import haversine_km_point
from arrive.ingest.simulator import truth, vendor
from arrive.ingest.simulator.config import SimulationConfig
from arrive.ingest.simulator.run import Environment, environment

VENDOR_NOISE_SIGMA: Final = vendor.VENDOR_NOISE_SIGMA
PROFILE_KMH: Final = vendor.PROFILE_KMH
#: Wind by weather condition (km/h): the simulator has no wind of its own.
WIND_KMH: Final[dict[str, float]] = {
    "clear": 9.0,
    "cloudy": 14.0,
    "fog": 5.0,
    "rain": 22.0,
    "storm": 48.0,
    "snow": 18.0,
}


@dataclass(frozen=True)
class LegAnswer:
    """A simulated vendor's answer for one leg."""

    seconds: float
    metres: float


@dataclass(frozen=True)
class Current:
    """The simulated current weather at a point."""

    temperature_c: float
    precipitation_mm: float
    wind_kmh: float


class SimulatedMarket:
    """Answers from the simulation in ``data_dir``.

    Raises:
        InputFileError: ``data_dir`` holds no simulated marketplace (one line saying why).
    """

    def __init__(self, data_dir: Path) -> None:
        self.env: Environment = environment(_config(Path(data_dir)))
        markets = self.env.world.markets
        self._centres = list(zip(markets.lat.tolist(), markets.lon.tolist(), strict=True))
        self.start = self.env.config.start_time
        days = self.env.config.days
        self._period_s = (days // 7 * 7 if days >= 7 else days) * 86_400.0

    def sim_seconds(self, at: datetime) -> float:
        """Seconds since the simulation's start of ``at``; a time outside the simulated
        period maps to the same time of day (and weekday, with a week or more) inside it."""
        offset = (at - self.start).total_seconds()
        if 0.0 <= offset < self.env.span_s:
            return offset
        return offset % self._period_s

    def market_of(self, lat: float, lon: float) -> int:
        """Index of the market whose centre is nearest (``lat``, ``lon``)."""
        distances = [haversine_km_point(lat, lon, c_lat, c_lon) for c_lat, c_lon in self._centres]
        return int(np.argmin(distances))

    def route(
        self, o_lat: float, o_lon: float, d_lat: float, d_lon: float, at: datetime, profile: str
    ) -> LegAnswer:
        """Travel time and road distance of a leg leaving at ``at``."""
        seconds, metres = vendor.leg_seconds(
            self.env,
            tuple(np.array([v]) for v in (o_lat, o_lon, d_lat, d_lon)),  # type: ignore[arg-type]
            np.array([self.sim_seconds(at)]),
            np.array([at.timestamp()]),
            profile,
        )
        return LegAnswer(seconds=float(seconds[0]), metres=float(metres[0]))

    def current(self, lat: float, lon: float, at: datetime) -> Current:
        """The weather at (``lat``, ``lon``) at ``at``."""
        market = np.array([self.market_of(lat, lon)])
        time_s = np.array([self.sim_seconds(at)])
        condition, rain = self.env.weather.at(market, time_s)
        temperature = self.env.weather.temperature_c(market, time_s, condition)
        name = truth.WEATHER_CONDITIONS[int(condition[0])]
        return Current(round(float(temperature[0]), 1), float(rain[0]), WIND_KMH[name])

    def speed_share(self, lat: float, lon: float, at: datetime) -> float:
        """The simulator's speed factor (traffic and weather) near (``lat``, ``lon``) at ``at``:
        what the simulated orders created there and then rode at."""
        markets = np.array([self.market_of(lat, lon)])
        return float(vendor.speed_share(self.env, markets, np.array([self.sim_seconds(at)]))[0])


def _config(data_dir: Path) -> SimulationConfig:
    path = data_dir / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(f"{data_dir}: no {SUMMARY_FILE} (not a data directory)") from None
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read it ({exc})") from None
    if summary.get("source") != "simulator" or "parameters" not in summary:
        raise InputFileError(
            f"{data_dir}: not a simulated marketplace (source {summary.get('source')!r}); "
            "make one with `arrive simulate`"
        )
    params = dict(summary["parameters"])
    params["start"] = date.fromisoformat(params["start"])
    return SimulationConfig(**params)
