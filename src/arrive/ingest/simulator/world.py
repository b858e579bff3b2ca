"""The simulated world: markets (cities), their stores, couriers and shifts.

Everything here is drawn once, before the first order, from the run's seed.
Arrays are indexed by position; ids are the strings written to the event log.
"""

from __future__ import annotations

import dataclasses
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from arrive.ingest.simulator import staffing, truth
from arrive.ingest.simulator.config import SimulationConfig

KM_PER_DEG_LAT: Final = 110.574
KM_PER_DEG_LON_EQUATOR: Final = 111.320

ORDERS_PER_STORE_DAY: Final = 30.0
VEHICLE_SHARE: Final = (0.45, 0.35, 0.20)
CATEGORY_SHARE: Final = (0.16, 0.14, 0.07, 0.12, 0.08, 0.08, 0.08, 0.10, 0.07, 0.10)


class City(NamedTuple):
    """A real city, used for its coordinates and size (the simulation keeps UTC)."""

    market_id: str
    lat: float
    lon: float
    radius_km: float
    size: float
    base_temp_c: float


CITIES: Final = (
    City("bristol", 51.4545, -2.5879, 9.0, 1.0, 8.0),
    City("leeds", 53.8008, -1.5491, 10.0, 1.1, 7.0),
    City("lisbon", 38.7223, -9.1393, 10.0, 1.3, 15.0),
    City("porto", 41.1579, -8.6291, 8.0, 0.8, 14.0),
    City("dublin", 53.3498, -6.2603, 11.0, 1.4, 8.0),
    City("glasgow", 55.8642, -4.2518, 10.0, 1.0, 6.0),
    City("manchester", 53.4808, -2.2426, 11.0, 1.5, 7.0),
    City("edinburgh", 55.9533, -3.1883, 8.0, 0.9, 6.0),
    City("cardiff", 51.4816, -3.1791, 7.0, 0.6, 8.0),
    City("belfast", 54.5973, -5.9301, 7.0, 0.6, 7.0),
    City("reykjavik", 64.1466, -21.9426, 6.0, 0.4, 1.0),
    City("accra", 5.6037, -0.1870, 12.0, 1.2, 28.0),
)

_F = NDArray[np.float64]
_I = NDArray[np.int64]


@dataclasses.dataclass(frozen=True)
class Markets:
    """Cities, each with a centre, a radius and its own traffic and climate."""

    ids: tuple[str, ...]
    lat: _F
    lon: _F
    radius_km: _F
    rush_strength: _F
    base_temp_c: _F
    share: _F  # of all orders

    @property
    def km_per_deg_lon(self) -> _F:
        """East-west kilometres per degree of longitude at each market's latitude."""
        return KM_PER_DEG_LON_EQUATOR * np.cos(np.radians(self.lat))


@dataclasses.dataclass(frozen=True)
class Stores:
    """Stores with their location, category and hidden preparation behaviour."""

    ids: tuple[str, ...]
    market: _I
    lat: _F
    lon: _F
    category: _I  # index into truth.CATEGORIES
    speed: _F  # > 1: slower than the category's typical prep time
    peak_sensitivity: _F
    popularity: _F


@dataclasses.dataclass(frozen=True)
class Couriers:
    """Couriers with their vehicle (index into truth.VEHICLES) and rating (0-5)."""

    ids: tuple[str, ...]
    market: _I
    vehicle: _I
    rating: _F


@dataclasses.dataclass(frozen=True)
class Shifts:
    """Working periods, sorted by market then start; a courier works at most one a day.

    ``base`` is where the courier drifts to while idle (near a popular store).
    """

    courier: _I
    market: _I
    start_s: _F
    end_s: _F
    start_lat: _F
    start_lon: _F
    base_lat: _F
    base_lon: _F


@dataclasses.dataclass(frozen=True)
class World:
    """Everything the engine needs that does not change during the run."""

    markets: Markets
    stores: Stores
    couriers: Couriers
    shifts: Shifts


def build_world(config: SimulationConfig, rng: np.random.Generator) -> World:
    """Draw markets, stores, couriers and their shifts for ``config``."""
    markets = _markets(config, rng)
    stores = _stores(config, markets, rng)
    couriers = _couriers(config, markets, rng)
    shifts = _shifts(config, markets, stores, couriers, rng)
    return World(markets, stores, couriers, shifts)


def offset_points(lat: _F, lon: _F, distance_km: _F, bearing: _F) -> tuple[_F, _F]:
    """Points ``distance_km`` away from (``lat``, ``lon``) towards ``bearing`` (radians)."""
    dlat = distance_km * np.cos(bearing) / KM_PER_DEG_LAT
    dlon = distance_km * np.sin(bearing) / (KM_PER_DEG_LON_EQUATOR * np.cos(np.radians(lat)))
    return lat + dlat, lon + dlon


def flat_km(
    lat1: _F | float,
    lon1: _F | float,
    lat2: _F | float,
    lon2: _F | float,
    km_per_deg_lon: _F | float,
) -> _F:
    """Distance on a local flat map (good to 0.1 % within a city), cheaper than haversine."""
    return np.asarray(
        np.hypot((lat1 - lat2) * KM_PER_DEG_LAT, (lon1 - lon2) * km_per_deg_lon), dtype=np.float64
    )


def to_local_km(markets: Markets, market: _I, lat: _F, lon: _F) -> NDArray[np.complex128]:
    """Points as ``x + iy`` kilometres east and north of their market's centre."""
    x = (lon - markets.lon[market]) * markets.km_per_deg_lon[market]
    y = (lat - markets.lat[market]) * KM_PER_DEG_LAT
    return x + 1j * y


def from_local_km(markets: Markets, market: _I, xy: NDArray[np.complex128]) -> tuple[_F, _F]:
    """Latitude and longitude of points given by :func:`to_local_km`."""
    lat = markets.lat[market] + xy.imag / KM_PER_DEG_LAT
    lon = markets.lon[market] + xy.real / markets.km_per_deg_lon[market]
    return lat, lon


def _markets(config: SimulationConfig, rng: np.random.Generator) -> Markets:
    cities = CITIES[: config.markets]
    size = np.array([c.size for c in cities])
    return Markets(
        ids=tuple(c.market_id for c in cities),
        lat=np.array([c.lat for c in cities]),
        lon=np.array([c.lon for c in cities]),
        radius_km=np.array([c.radius_km for c in cities]),
        rush_strength=rng.uniform(0.7, 1.3, len(cities)),
        base_temp_c=np.array([c.base_temp_c for c in cities]),
        share=size / size.sum(),
    )


def _orders_per_market_day(config: SimulationConfig, markets: Markets) -> _F:
    return config.orders_per_day * markets.share


def _stores(config: SimulationConfig, markets: Markets, rng: np.random.Generator) -> Stores:
    counts = np.maximum(5, np.round(_orders_per_market_day(config, markets) / ORDERS_PER_STORE_DAY))
    market = np.repeat(np.arange(len(markets.ids)), counts.astype(np.int64))
    n = len(market)
    # stores crowd towards the centre: radius × u^0.75 (uniform in area would be u^0.5)
    distance = markets.radius_km[market] * rng.random(n) ** 0.75
    lat, lon = offset_points(
        markets.lat[market], markets.lon[market], distance, rng.uniform(0, 2 * np.pi, n)
    )
    return Stores(
        ids=tuple(f"s{i + 1:05d}" for i in range(n)),
        market=market,
        lat=lat,
        lon=lon,
        category=rng.choice(len(truth.CATEGORIES), n, p=np.array(CATEGORY_SHARE)),
        speed=np.exp(rng.normal(0.0, 0.3, n)),
        peak_sensitivity=rng.uniform(0.05, 0.6, n),
        popularity=np.exp(rng.normal(0.0, 0.7, n)),
    )


def _couriers(config: SimulationConfig, markets: Markets, rng: np.random.Generator) -> Couriers:
    counts = [staffing.couriers_needed(n) for n in _orders_per_market_day(config, markets)]
    market = np.repeat(np.arange(len(markets.ids)), counts)
    n = len(market)
    return Couriers(
        ids=tuple(f"c{i + 1:05d}" for i in range(n)),
        market=market,
        vehicle=rng.choice(len(truth.VEHICLES), n, p=np.array(VEHICLE_SHARE)),
        rating=np.round(3.6 + 1.4 * rng.beta(5.0, 2.0, n), 2),
    )


def _shifts(
    config: SimulationConfig,
    markets: Markets,
    stores: Stores,
    couriers: Couriers,
    rng: np.random.Generator,
) -> Shifts:
    start_s = np.full((len(couriers.ids), config.days + 1), np.nan)
    end_s = start_s.copy()
    for m, orders_per_day in enumerate(_orders_per_market_day(config, markets)):
        own = couriers.market == m
        start_s[own], end_s[own] = staffing.shift_times(
            orders_per_day, int(own.sum()), config.days, config.horizon_s, rng
        )
    courier = np.nonzero(np.isfinite(start_s))
    order = np.lexsort((start_s[courier], couriers.market[courier[0]]))
    who = courier[0][order]
    start, end = start_s[courier][order], end_s[courier][order]
    market = couriers.market[who]
    start_lat, start_lon = _homes(markets, market, rng)
    base_lat, base_lon = _bases(stores, market, rng)
    return Shifts(who, market, start, end, start_lat, start_lon, base_lat, base_lon)


def _homes(markets: Markets, market: _I, rng: np.random.Generator) -> tuple[_F, _F]:
    n = len(market)
    distance = 0.8 * markets.radius_km[market] * np.sqrt(rng.random(n))
    bearing = rng.uniform(0, 2 * np.pi, n)
    return offset_points(markets.lat[market], markets.lon[market], distance, bearing)


def _bases(stores: Stores, market: _I, rng: np.random.Generator) -> tuple[_F, _F]:
    n = len(market)
    chosen = np.empty(n, dtype=np.int64)
    for m in np.unique(market):
        own = np.flatnonzero(stores.market == m)
        weights = stores.popularity[own] / stores.popularity[own].sum()
        chosen[market == m] = rng.choice(own, int((market == m).sum()), p=weights)
    distance = rng.exponential(0.5, n)
    bearing = rng.uniform(0, 2 * np.pi, n)
    return offset_points(stores.lat[chosen], stores.lon[chosen], distance, bearing)
