"""Customer orders: when, from which store, to where, and what is in the basket.

Orders arrive by market and hour in proportion to the market's size, the hour
of day, the weekday and the weather (:mod:`.seasonality`); the exact total is
``orders_per_day × days``. A store is picked by its popularity and how well its
category fits the hour (cafés in the morning, pizza at night).
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray

from arrive.geo import haversine_km
from arrive.ingest.simulator.seasonality import WEATHER_DEMAND, WEEKDAY_DEMAND, hourly_demand
from arrive.ingest.simulator.weather import WeatherEpisodes
from arrive.ingest.simulator.world import World, offset_points

_F = NDArray[np.float64]
_I = NDArray[np.int64]

DROP_MEDIAN_KM: Final = 2.0
DROP_SIGMA: Final = 0.55
DROP_RANGE_KM: Final = (0.3, 6.0)
# per category, in truth.CATEGORIES order: mean items, mean price of an item
ITEMS_MEAN: Final = np.array([2.5, 2.0, 3.0, 2.5, 3.0, 2.5, 2.0, 2.0, 2.0, 8.0])
ITEM_PRICE: Final = np.array([8.0, 11.0, 9.0, 9.0, 10.0, 8.0, 10.0, 4.5, 5.0, 3.0])
# per category: affinity to breakfast, lunch, dinner and late-night hours
MEAL_AFFINITY: Final = np.array(
    [
        [0.2, 1.0, 1.0, 1.3],
        [0.1, 0.8, 1.3, 1.3],
        [0.05, 1.0, 1.2, 0.6],
        [0.1, 1.0, 1.1, 0.9],
        [0.05, 0.7, 1.3, 1.0],
        [0.1, 1.0, 1.1, 1.0],
        [0.6, 1.3, 0.7, 0.3],
        [2.5, 0.9, 0.4, 0.2],
        [0.3, 0.6, 1.0, 1.4],
        [1.2, 1.0, 0.9, 0.7],
    ]
)
_MEAL_HOURS: Final = np.array([8.5, 12.75, 19.5, 23.0])


@dataclasses.dataclass(frozen=True)
class Orders:
    """Orders sorted by creation time (seconds since the start)."""

    created_s: _F
    market: _I
    store: _I
    drop_lat: _F
    drop_lon: _F
    drop_km: _F  # straight line from the store
    items: _I
    distinct_items: _I
    subtotal: _F

    def __len__(self) -> int:
        return len(self.created_s)


def generate_orders(
    total: int,
    start: date,
    days: int,
    world: World,
    weather: WeatherEpisodes,
    rng: np.random.Generator,
) -> Orders:
    """Draw exactly ``total`` orders over ``days`` days from midnight of ``start``."""
    created, market = _arrivals(total, start, days, world, weather, rng)
    store = _stores_for(created, market, world, rng)
    return _baskets(created, market, store, world, rng)


def _hour_weights(start: date, days: int, world: World, weather: WeatherEpisodes) -> _F:
    """Relative demand of each (market, hour) cell, flattened market-major."""
    hours = np.arange(days * 24)
    weekday = np.array([(start + timedelta(days=int(h // 24))).weekday() for h in hours])
    by_hour = WEEKDAY_DEMAND[weekday] * hourly_demand(hours % 24 + 0.5)
    markets = len(world.markets.ids)
    cell_market = np.repeat(np.arange(markets), len(hours))
    cell_mid_s = np.tile(hours * 3600.0 + 1800.0, markets)
    condition, _ = weather.at(cell_market, cell_mid_s)
    boost = np.array(list(WEATHER_DEMAND.values()))[condition]
    return np.asarray(world.markets.share[cell_market] * np.tile(by_hour, markets) * boost)


def _arrivals(
    total: int,
    start: date,
    days: int,
    world: World,
    weather: WeatherEpisodes,
    rng: np.random.Generator,
) -> tuple[_F, _I]:
    weights = _hour_weights(start, days, world, weather)
    counts = rng.multinomial(total, weights / weights.sum())
    cell = np.repeat(np.arange(len(weights)), counts)
    hours_per_market = days * 24
    created = (cell % hours_per_market) * 3600.0 + rng.uniform(0.0, 3600.0, total)
    market = cell // hours_per_market
    order = np.argsort(created, kind="stable")
    return created[order], market[order]


def _affinity(hour: _F) -> _F:
    """Category × hour-of-day affinity, shape (categories, len(hour))."""
    distance = np.abs(hour[None, :] - _MEAL_HOURS[:, None])
    distance = np.minimum(distance, 24.0 - distance)
    shape = np.exp(-0.5 * (distance / 2.0) ** 2) + 1e-3
    return np.asarray(MEAL_AFFINITY @ (shape / shape.sum(axis=0)))


def _stores_for(created: _F, market: _I, world: World, rng: np.random.Generator) -> _I:
    stores = world.stores
    hour_of_day = ((created // 3600) % 24).astype(np.int64)
    affinity = _affinity(np.arange(24, dtype=np.float64) + 0.5)
    store = np.empty(len(created), dtype=np.int64)
    for m in range(len(world.markets.ids)):
        own = np.flatnonzero(stores.market == m)
        for hour in range(24):
            rows = np.flatnonzero((market == m) & (hour_of_day == hour))
            weights = stores.popularity[own] * affinity[stores.category[own], hour]
            store[rows] = rng.choice(own, len(rows), p=weights / weights.sum())
    return store


def _baskets(created: _F, market: _I, store: _I, world: World, rng: np.random.Generator) -> Orders:
    n = len(created)
    stores = world.stores
    distance = np.clip(DROP_MEDIAN_KM * np.exp(rng.normal(0.0, DROP_SIGMA, n)), *DROP_RANGE_KM)
    drop_lat, drop_lon = offset_points(
        stores.lat[store], stores.lon[store], distance, rng.uniform(0, 2 * np.pi, n)
    )
    category = stores.category[store]
    items = 1 + rng.poisson(ITEMS_MEAN[category] - 1.0)
    distinct = 1 + rng.binomial(items - 1, 0.6)
    subtotal = np.round(items * ITEM_PRICE[category] * np.exp(rng.normal(0.0, 0.25, n)), 2)
    return Orders(
        created_s=created,
        market=market,
        store=store,
        drop_lat=drop_lat,
        drop_lon=drop_lon,
        drop_km=haversine_km(stores.lat[store], stores.lon[store], drop_lat, drop_lon),
        items=items.astype(np.int64),
        distinct_items=distinct.astype(np.int64),
        subtotal=subtotal,
    )
