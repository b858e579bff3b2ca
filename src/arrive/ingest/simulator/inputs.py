"""What the ground truth is fed for each order, apart from courier and store state.

Two kinds of input, both drawn before the engine runs: the conditions at the
order's creation (hour, traffic, weather, the prep time before load) and the
order's own random draws (store confirmation, dispatch, hand-overs, patience,
travel noise).
"""

from __future__ import annotations

import dataclasses
from typing import Final

import numpy as np
from numpy.typing import NDArray

from arrive.ingest.simulator import truth
from arrive.ingest.simulator.config import RegimeChange
from arrive.ingest.simulator.demand import Orders
from arrive.ingest.simulator.traffic import Traffic
from arrive.ingest.simulator.weather import WeatherEpisodes
from arrive.ingest.simulator.world import Stores

_F = NDArray[np.float64]
_I = NDArray[np.int64]

PATIENCE_MEDIAN_S: Final = 3600.0
PREP_NOISE_SIGMA: Final = 0.25
TRAVEL_NOISE_SIGMA: Final = 0.15
MAX_CONFIRM_S: Final = 300.0
MAX_DISPATCH_S: Final = 240.0
MAX_HANDOVER_S: Final = 300.0
MAX_DROPOFF_S: Final = 300.0


@dataclasses.dataclass(frozen=True)
class OrderInputs:
    """Per-order inputs of :mod:`.truth`, aligned with :class:`~.demand.Orders`."""

    hour: _F
    congestion: _F
    condition: _I  # index into truth.WEATHER_CONDITIONS
    precipitation_mm: _F
    speed_share: _F  # truth.speed_factor at creation
    prep_base_s: _F
    confirm_s: _F
    dispatch_s: _F
    handover_s: _F
    dropoff_s: _F
    patience_s: _F
    to_store_noise: _F
    to_drop_noise: _F


def order_inputs(
    orders: Orders,
    stores: Stores,
    traffic: Traffic,
    weather: WeatherEpisodes,
    rng: np.random.Generator,
    regime: RegimeChange | None = None,
) -> OrderInputs:
    """Conditions at creation and random draws of every order (with ``regime``, the
    orders created from its day on ride that much slower)."""
    n = len(orders)
    hour = (orders.created_s % 86_400.0) / 3600.0
    congestion = traffic.congestion(orders.market, orders.created_s)
    condition, precipitation = weather.at(orders.market, orders.created_s)
    slowdown = truth.weather_slowdown(condition, precipitation)
    return OrderInputs(
        hour=hour,
        congestion=congestion,
        condition=condition,
        precipitation_mm=precipitation,
        speed_share=_speed_share(orders, congestion, slowdown, regime),
        prep_base_s=_prep_base_s(orders, stores, hour, rng),
        confirm_s=np.minimum(20.0 + rng.exponential(40.0, n), MAX_CONFIRM_S),
        dispatch_s=np.minimum(20.0 + rng.exponential(30.0, n), MAX_DISPATCH_S),
        handover_s=np.minimum(45.0 + rng.exponential(60.0, n), MAX_HANDOVER_S),
        dropoff_s=np.minimum(60.0 + rng.exponential(60.0, n), MAX_DROPOFF_S),
        patience_s=np.clip(
            PATIENCE_MEDIAN_S * np.exp(rng.normal(0.0, 0.2, n)), *truth.PATIENCE_RANGE_S
        ),
        to_store_noise=_travel_noise(n, rng),
        to_drop_noise=_travel_noise(n, rng),
    )


def _speed_share(orders: Orders, congestion: _F, slowdown: _F, regime: RegimeChange | None) -> _F:
    share = truth.speed_factor(congestion, slowdown)
    if regime is None:
        return share
    after = orders.created_s >= regime.start_s
    return np.where(after, share / (1.0 + regime.travel_slowdown), share)


def _prep_base_s(orders: Orders, stores: Stores, hour: _F, rng: np.random.Generator) -> _F:
    category_prep_s = np.array(list(truth.CATEGORY_PREP_S.values()))
    store = orders.store
    return truth.prep_base_s(
        category_prep_s[stores.category[store]],
        stores.speed[store],
        orders.items,
        stores.peak_sensitivity[store],
        hour,
        np.exp(rng.normal(0.0, PREP_NOISE_SIGMA, len(orders))),
    )


def _travel_noise(n: int, rng: np.random.Generator) -> _F:
    return np.clip(np.exp(rng.normal(0.0, TRAVEL_NOISE_SIGMA, n)), *truth.TRAVEL_NOISE_RANGE)
