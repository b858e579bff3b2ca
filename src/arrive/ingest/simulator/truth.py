"""The ground truth of the simulated marketplace: how long an order takes, and why.

Every duration the simulator produces comes from the pure functions of this
module. The engine (:mod:`arrive.ingest.simulator.engine`) only supplies the
inputs that need state: which courier takes the order, where that courier is,
and how many orders the store is already preparing. Units: seconds (``_s``),
kilometres (``_km``), km/h (``_kmh``); ``hour`` is the hour of the day as a
float in [0, 24). The simulated cities keep UTC, so the hour of an event's UTC
timestamp is its local hour.

The lifecycle of one order::

    confirmed = created + confirm_s
    ready     = confirmed + prep_s
    assigned  = max(confirmed + dispatch_s, the moment the chosen courier is free)
    at_store  = assigned + to_store_s
    picked_up = max(at_store, ready) + handover_s
    delivered = picked_up + to_drop_s + dropoff_s

    cancelled at created + patience_s instead, if picked_up would come later
    (reason "customer_late"; nothing after that instant happens)

with::

    prep_s = max(180, category_prep_s × store_speed × items_factor × peak_factor
                      × load_factor × noise)
        items_factor = 1 + 0.06 · (items − 1)
        peak_factor  = 1 + peak_sensitivity · peak(hour)      lunch 12:45 / dinner 19:30 bumps
        load_factor  = 1 + 0.06 · min(open_orders, 12)        orders the store is still preparing

    travel_s = 1.35 · distance_km / (vehicle_kmh · speed_factor) · 3600 · noise
        speed_factor     = max(0.45, (1 − congestion) · (1 − weather_slowdown))
        congestion       = (0.06 + 0.10 · midday(hour)
                            + 0.38 · rush_strength · rush(hour) · (0.4 on weekends))
                           × hourly noise, within [0.02, 0.55]; rush(hour) has a morning
                           (8:30) and a stronger evening (17:45) peak
        weather_slowdown = by condition (clear 0, cloudy 0.02, fog 0.10, rain 0.12,
                           storm 0.25, snow 0.35) + 0.01 · precipitation_mm (≤ 10 mm/h)
        vehicle_kmh      = bicycle 15, scooter 24, car 27

    to_store_s = travel_s(distance from the courier to the store, its vehicle, ...)
    to_drop_s  = travel_s(distance from the store to the drop, same courier, ...)

Traffic and weather are those at the order's creation. The dispatcher gives an
order to the on-shift courier that can reach the store first: an idle one right
after ``dispatch_s``, or a busy one once it has delivered. Hence courier
proximity matters (the distance of the nearest idle courier sets ``to_store_s``)
and a shortage of idle couriers at busy hours or in bad weather (demand rises
with both) turns into waiting. Bicycles only take drops within 3.5 km.

The per-order draws (:mod:`.inputs`) are bounded: prep noise lognormal σ 0.25;
travel noise lognormal σ 0.15 clipped to :data:`TRAVEL_NOISE_RANGE`; confirm
20 s + Exp(40 s) ≤ 5 min; dispatch 20 s + Exp(30 s) ≤ 4 min; hand-over at the
store 45 s + Exp(60 s) and at the door 60 s + Exp(60 s), each ≤ 5 min;
patience 60 min × lognormal σ 0.2 within :data:`PATIENCE_RANGE_S`. Drops lie
0.3 to 6 km from the store. Hence a delivered order always takes 5 to 150 minutes.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

DETOUR: Final = 1.35
"""Road distance over straight-line distance."""
ITEM_FACTOR: Final = 0.06
LOAD_FACTOR: Final = 0.06
LOAD_CAP: Final = 12
MIN_PREP_S: Final = 180.0
MIN_SPEED_FACTOR: Final = 0.45
MAX_CONGESTION: Final = 0.55
PRECIPITATION_SLOWDOWN_PER_MM: Final = 0.01
TRAVEL_NOISE_RANGE: Final = (0.75, 1.4)
PATIENCE_RANGE_S: Final = (45 * 60.0, 80 * 60.0)
BICYCLE_MAX_DROP_KM: Final = 3.5

CATEGORY_PREP_S: Final[dict[str, float]] = {
    "burger": 540.0,
    "pizza": 840.0,
    "sushi": 960.0,
    "asian": 720.0,
    "indian": 900.0,
    "mexican": 600.0,
    "healthy": 480.0,
    "cafe": 360.0,
    "dessert": 300.0,
    "grocery": 420.0,
}
CATEGORIES: Final = tuple(CATEGORY_PREP_S)

WEATHER_SLOWDOWN: Final[dict[str, float]] = {
    "clear": 0.0,
    "cloudy": 0.02,
    "fog": 0.10,
    "rain": 0.12,
    "storm": 0.25,
    "snow": 0.35,
}
WEATHER_CONDITIONS: Final = tuple(WEATHER_SLOWDOWN)

VEHICLE_KMH: Final[dict[str, float]] = {"bicycle": 15.0, "scooter": 24.0, "car": 27.0}
VEHICLES: Final = tuple(VEHICLE_KMH)

TRAFFIC_LEVELS: Final = ("low", "medium", "high", "jam")
_TRAFFIC_THRESHOLDS: Final = np.array([0.15, 0.28, 0.42])


class Timeline(NamedTuple):
    """The instants (seconds since the start of the simulation) of one order."""

    created_s: float
    confirmed_s: float
    ready_s: float
    assigned_s: float
    at_store_s: float
    picked_up_s: float
    delivered_s: float


def _bump(hour: npt.ArrayLike, centre: float, width: float) -> NDArray[np.float64]:
    z = (np.asarray(hour, dtype=np.float64) - centre) / width
    return np.exp(-0.5 * z * z)


def peak(hour: npt.ArrayLike) -> NDArray[np.float64]:
    """How much a store's kitchen is in its lunch or dinner rush, in [0, 1]."""
    return np.maximum(_bump(hour, 12.75, 1.2), _bump(hour, 19.5, 1.5))


def rush(hour: npt.ArrayLike) -> NDArray[np.float64]:
    """Road rush-hour intensity (morning 8:30, evening 17:45), in [0, ~0.9]."""
    return 0.8 * _bump(hour, 8.5, 1.0) + _bump(hour, 17.75, 1.3)


def congestion(
    hour: npt.ArrayLike,
    rush_strength: npt.ArrayLike,
    weekend: npt.ArrayLike,
    noise: npt.ArrayLike = 1.0,
) -> NDArray[np.float64]:
    """Share of road speed lost to traffic, in [0.02, 0.55].

    Args:
        hour: hour of the day.
        rush_strength: the market's rush-hour severity (about 0.6 to 1.4).
        weekend: true on Saturdays and Sundays (rush hours at 40 %).
        noise: multiplicative hour-to-hour variation (1 = the profile itself).
    """
    weekday_rush = np.where(np.asarray(weekend, dtype=bool), 0.4, 1.0)
    base = 0.06 + 0.10 * _bump(hour, 13.0, 2.5)
    level = base + 0.38 * np.asarray(rush_strength) * weekday_rush * rush(hour)
    return np.clip(level * np.asarray(noise, dtype=np.float64), 0.02, MAX_CONGESTION)


def traffic_level(congestion_share: npt.ArrayLike) -> NDArray[np.int64]:
    """Index into :data:`TRAFFIC_LEVELS` (low/medium/high/jam) of a congestion share."""
    return np.searchsorted(_TRAFFIC_THRESHOLDS, np.asarray(congestion_share), side="right")


def weather_slowdown(
    condition: npt.ArrayLike, precipitation_mm: npt.ArrayLike
) -> NDArray[np.float64]:
    """Share of courier speed lost to the weather.

    Args:
        condition: index into :data:`WEATHER_CONDITIONS`.
        precipitation_mm: precipitation in mm/h.
    """
    by_condition = np.array(list(WEATHER_SLOWDOWN.values()))[np.asarray(condition)]
    wet = PRECIPITATION_SLOWDOWN_PER_MM * np.clip(precipitation_mm, 0.0, 10.0)
    return np.asarray(by_condition + wet, dtype=np.float64)


def speed_factor(congestion_share: npt.ArrayLike, slowdown: npt.ArrayLike) -> NDArray[np.float64]:
    """Courier speed as a share of its free-flow speed, given traffic and weather."""
    factor = (1.0 - np.asarray(congestion_share)) * (1.0 - np.asarray(slowdown))
    return np.maximum(factor, MIN_SPEED_FACTOR)


def prep_base_s(
    category_prep_s: npt.ArrayLike,
    store_speed: npt.ArrayLike,
    items: npt.ArrayLike,
    peak_sensitivity: npt.ArrayLike,
    hour: npt.ArrayLike,
    noise: npt.ArrayLike = 1.0,
) -> NDArray[np.float64]:
    """Preparation time before the store's load is accounted for (see :func:`prep_s`).

    Args:
        category_prep_s: typical prep time of the store's category.
        store_speed: the store's own factor (above 1 = slower than its category).
        items: number of items in the order.
        peak_sensitivity: how much the store slows in its lunch and dinner rush.
        hour: hour of the day at creation.
        noise: the order's own lognormal factor.
    """
    items_factor = 1.0 + ITEM_FACTOR * (np.asarray(items) - 1.0)
    peak_factor = 1.0 + np.asarray(peak_sensitivity) * peak(hour)
    base = np.asarray(category_prep_s) * np.asarray(store_speed) * items_factor * peak_factor
    return np.asarray(base * np.asarray(noise), dtype=np.float64)


def load_factor(open_orders: int) -> float:
    """How much a store slows with the orders it is already preparing."""
    return 1.0 + LOAD_FACTOR * min(open_orders, LOAD_CAP)


def prep_s(base_s: float, open_orders: int) -> float:
    """Preparation time of an order, given :func:`prep_base_s` and the store's open orders."""
    return max(MIN_PREP_S, base_s * load_factor(open_orders))


def travel_s(
    distance_km: float, vehicle_kmh: float, speed_share: float, noise: float = 1.0
) -> float:
    """Time to ride ``distance_km`` (straight line) given the vehicle and :func:`speed_factor`."""
    return DETOUR * distance_km / (vehicle_kmh * speed_share) * 3600.0 * noise


def timeline(
    created_s: float,
    confirm_s: float,
    prep_time_s: float,
    dispatch_s: float,
    courier_free_s: float,
    to_store_s: float,
    handover_s: float,
    to_drop_s: float,
    dropoff_s: float,
) -> Timeline:
    """The instants of an order's lifecycle (the formula in the module docstring)."""
    confirmed = created_s + confirm_s
    assigned = max(confirmed + dispatch_s, courier_free_s)
    at_store = assigned + to_store_s
    ready = confirmed + prep_time_s
    picked_up = max(at_store, ready) + handover_s
    delivered = picked_up + to_drop_s + dropoff_s
    return Timeline(created_s, confirmed, ready, assigned, at_store, picked_up, delivered)


def is_cancelled(order: Timeline, patience_s: float) -> bool:
    """True when the customer gives up: pick-up would come after ``patience_s``."""
    return order.picked_up_s > order.created_s + patience_s
