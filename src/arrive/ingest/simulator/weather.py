"""Weather episodes per market: a Markov chain of conditions with random durations.

Episodes start at any minute (not only on the hour). Temperature follows the
market's climate, a daily cycle peaking at 15:00 and a day-to-day offset; rain
becomes snow below 1.5 °C. Precipitation is constant within an episode.
"""

from __future__ import annotations

import dataclasses
from typing import Final

import numpy as np
from numpy.typing import NDArray

from arrive.ingest.simulator import truth

_F = NDArray[np.float64]
_I = NDArray[np.int64]

_CONDITION = {name: i for i, name in enumerate(truth.WEATHER_CONDITIONS)}
MEAN_EPISODE_H: Final = np.array([8.0, 6.0, 3.0, 4.0, 2.0, 5.0])
MIN_EPISODE_S: Final = 1800.0
TRANSITIONS: Final = np.array(
    [  # to: clear, cloudy, fog, rain, storm, snow (rows in the same order)
        [0.00, 0.70, 0.10, 0.20, 0.00, 0.00],
        [0.45, 0.00, 0.05, 0.40, 0.10, 0.00],
        [0.50, 0.50, 0.00, 0.00, 0.00, 0.00],
        [0.15, 0.55, 0.00, 0.00, 0.30, 0.00],
        [0.00, 0.30, 0.00, 0.70, 0.00, 0.00],
        [0.20, 0.80, 0.00, 0.00, 0.00, 0.00],
    ]
)
PRECIPITATION_MEDIAN_MM: Final = np.array([0.0, 0.0, 0.0, 1.5, 8.0, 1.0])
CONDITION_TEMP_C: Final = np.array([1.0, 0.0, -1.0, -1.5, -2.5, -1.0])
DAILY_AMPLITUDE_C: Final = 4.0
SNOW_BELOW_C: Final = 1.5


@dataclasses.dataclass(frozen=True)
class WeatherEpisodes:
    """Episodes of every market, sorted by market then start (the first starts at 0)."""

    market: _I
    start_s: _F
    condition: _I  # index into truth.WEATHER_CONDITIONS
    precipitation_mm: _F
    base_temp_c: _F  # per market
    day_offset_c: NDArray[np.float64]  # per market and day

    def at(self, market: _I, time_s: _F) -> tuple[_I, _F]:
        """Condition and precipitation in ``market`` at ``time_s`` (vectorised)."""
        index = self.episode(market, time_s)
        return self.condition[index], self.precipitation_mm[index]

    def episode(self, market: _I, time_s: _F) -> _I:
        """Index of the episode in force in ``market`` at ``time_s``."""
        key = self.market * _KEY_SPAN + self.start_s
        found = np.searchsorted(key, market * _KEY_SPAN + time_s, side="right") - 1
        return found.astype(np.int64)

    def temperature_c(self, market: _I, time_s: _F, condition: _I) -> _F:
        """Air temperature in ``market`` at ``time_s`` under ``condition``."""
        hour = (time_s / 3600.0) % 24.0
        day = np.minimum((time_s // 86_400).astype(np.int64), self.day_offset_c.shape[1] - 1)
        daily = DAILY_AMPLITUDE_C * np.sin(2 * np.pi * (hour - 9.0) / 24.0)
        offset = self.day_offset_c[market, day]
        temperature = self.base_temp_c[market] + daily + offset + CONDITION_TEMP_C[condition]
        return np.asarray(temperature, dtype=np.float64)


_KEY_SPAN: Final = 1e9  # seconds: larger than any simulated period


def simulate_weather(
    base_temp_c: _F, horizon_s: float, rng: np.random.Generator
) -> WeatherEpisodes:
    """Weather episodes covering [0, ``horizon_s``] for markets with ``base_temp_c``."""
    days = int(np.ceil(horizon_s / 86_400)) + 1
    offsets = rng.normal(0.0, 2.0, (len(base_temp_c), days))
    parts = [_market_episodes(m, horizon_s, rng) for m in range(len(base_temp_c))]
    market = np.concatenate([np.full(len(p[0]), m) for m, p in enumerate(parts)])
    start = np.concatenate([p[0] for p in parts])
    condition = np.concatenate([p[1] for p in parts])
    episodes = WeatherEpisodes(market, start, condition, np.zeros(len(start)), base_temp_c, offsets)
    condition = _snow_when_cold(episodes)
    median = PRECIPITATION_MEDIAN_MM[condition]
    precipitation = np.round(median * np.exp(rng.normal(0.0, 0.5, len(start))), 1)
    return dataclasses.replace(episodes, condition=condition, precipitation_mm=precipitation)


def _market_episodes(market: int, horizon_s: float, rng: np.random.Generator) -> tuple[_F, _I]:
    starts, conditions = [0.0], [int(rng.choice(3, p=[0.6, 0.3, 0.1]))]
    while starts[-1] < horizon_s:
        state = conditions[-1]
        length = max(MIN_EPISODE_S, rng.exponential(MEAN_EPISODE_H[state] * 3600.0))
        starts.append(starts[-1] + length)
        conditions.append(int(rng.choice(len(TRANSITIONS), p=TRANSITIONS[state])))
    return np.array(starts[:-1]), np.array(conditions[:-1], dtype=np.int64)


def _snow_when_cold(episodes: WeatherEpisodes) -> _I:
    wet = (episodes.condition == _CONDITION["rain"]) | (episodes.condition == _CONDITION["storm"])
    temp = episodes.temperature_c(episodes.market, episodes.start_s, episodes.condition)
    return np.where(wet & (temp < SNOW_BELOW_C), _CONDITION["snow"], episodes.condition)
