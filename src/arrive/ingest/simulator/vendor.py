"""What a routing vendor answers in a simulated marketplace: the one copy of its formula.

The simulated vendor server (:mod:`arrive.testing.vendor`) answers requests with it, and
``arrive simulate --provider-observations`` records, for every order, what that server
would have answered for the store→drop leg at the order's creation. A leg's time is its
market's (the one whose centre is nearest the origin)::

    seconds = DETOUR × km / (vehicle_kmh × speed_factor(congestion, weather)) × 3600 × noise

where ``noise`` is the vendor's own error (log-normal, σ = :data:`VENDOR_NOISE_SIGMA`,
fixed per leg and 5-minute bucket, so a repeated question gets the same answer).
"""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from arrive.geo import haversine_km
from arrive.ingest.simulator import truth

if TYPE_CHECKING:
    from arrive.ingest.simulator.run import Environment

_F = NDArray[np.float64]
VENDOR_NOISE_SIGMA: Final = 0.08
NOISE_BUCKET_S: Final = 300
DEFAULT_PROFILE: Final = "driving"
_NORMAL: Final = NormalDist()
PROFILE_KMH: Final[dict[str, float]] = {
    "driving": truth.VEHICLE_KMH["car"],
    "car": truth.VEHICLE_KMH["car"],
    "scooter": truth.VEHICLE_KMH["scooter"],
    "bike": truth.VEHICLE_KMH["bicycle"],
    "cycling": truth.VEHICLE_KMH["bicycle"],
    "foot": 5.0,
}


def nearest_market(env: Environment, lat: _F, lon: _F) -> NDArray[np.int64]:
    """Index of the market whose centre is nearest each point."""
    markets = env.world.markets
    km = haversine_km(lat[:, None], lon[:, None], markets.lat[None, :], markets.lon[None, :])
    return np.asarray(np.argmin(km, axis=1), dtype=np.int64)


def speed_share(env: Environment, market: NDArray[np.int64], time_s: _F) -> _F:
    """The simulator's speed factor (traffic and weather) in ``market`` at ``time_s`` (seconds
    since the start): what the orders created there and then rode at."""
    congestion = env.traffic.congestion(market, time_s)
    condition, rain = env.weather.at(market, time_s)
    return truth.speed_factor(congestion, truth.weather_slowdown(condition, rain))


def leg_seconds(
    env: Environment,
    legs: tuple[_F, _F, _F, _F],
    time_s: _F,
    epoch_s: _F,
    profile: str = DEFAULT_PROFILE,
) -> tuple[_F, _F]:
    """The vendor's travel time (s, to 0.1) and road distance (m) of each leg
    (origin lat, lon, destination lat, lon) leaving at ``time_s`` since the simulation's
    start (``epoch_s`` the same instants in Unix seconds, which fix the noise)."""
    o_lat, o_lon, d_lat, d_lon = legs
    km = haversine_km(o_lat, o_lon, d_lat, d_lon)
    share = speed_share(env, nearest_market(env, o_lat, o_lon), time_s)
    kmh = PROFILE_KMH.get(profile, truth.VEHICLE_KMH["car"])
    noise = np.array(
        [noise_factor(leg, float(at)) for *leg, at in zip(*legs, epoch_s, strict=True)]
    )
    seconds = truth.DETOUR * km / (kmh * share) * 3600.0 * noise
    return np.round(seconds, 1), np.round(truth.DETOUR * km * 1000.0, 1)


def noise_factor(leg: tuple[float, ...] | list[float], epoch_s: float) -> float:
    """The vendor's error for one leg asked at ``epoch_s`` (the same within a bucket)."""
    bucket = int(epoch_s) // NOISE_BUCKET_S
    key = ",".join(f"{c:.5f}" for c in leg) + f"@{bucket}"
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    uniform = (int.from_bytes(digest, "big") + 0.5) / 2**64
    return math.exp(VENDOR_NOISE_SIGMA * _NORMAL.inv_cdf(uniform))
