"""Vendor calls saved by the travel-time cache at a delivery platform's traffic, with the
travel-time error against an uncached run (issue 22, figure a).

Usage: python bench/providers_bench.py [--days 2] [--orders-per-day 4000] [--per-order 1 10]
                                      [--variants SPEC ...]

Traffic model (stated, not measured from a platform): a platform asks for an ETA several
times per order. For ``N`` requests per order, an order created at ``t`` from store ``s``
to customer ``c`` is asked for the leg ``s → c``:

* ``N - 2`` times while the customer browses, at ``t - U(0, 10 min)`` (``N ≥ 3``);
* once at checkout, at ``t``;
* once while tracking, at ``t + U(0, 20 min)`` (``N ≥ 2``).

``N = 1`` is checkout only. The vendor is the simulated vendor's own model
(:class:`arrive.testing.vendor.market.SimulatedMarket`, in process: the same answers
``arrive providers serve-sim`` gives, traffic and weather of the simulated city, vendor
noise per 5-minute bucket), answering each request for its own time. The chain runs on
virtual time that follows the requests, once per cache variant over the same requests.
A variant is ``key=value`` pairs, comma-separated: ``ttl``, ``grace``, ``bucket``
(seconds), ``cell`` (metres), ``rescale`` (1: cached answers carried over to the asked
leg by the built-in estimate's ratio); ``default`` is the service's default cache. For
each ``N`` and variant: vendor requests (fills and background refreshes), the share
saved, and the MAE of the travel time answered against the simulated truth (the city's
speed at that moment, no vendor noise), cached and uncached (same requests).

Prints JSON with every figure, the date and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from arrive.clock import ManualClock
from arrive.geo import haversine_km_point
from arrive.ingest.simulator import truth
from arrive.ingest.simulator.config import SimulationConfig
from arrive.ingest.simulator.run import simulate, write_simulation
from arrive.providers.base import Leg, TravelTime
from arrive.providers.builtin import BuiltinProvider
from arrive.providers.cache import CacheSettings, Rescale, TravelTimeCache
from arrive.providers.cache_store import MemoryCacheStore
from arrive.providers.chain import ProviderChain
from arrive.testing.vendor.market import PROFILE_KMH
from arrive.testing.vendor.market import SimulatedMarket as Market

BROWSE_S = 600.0
TRACK_S = 1200.0
OLD_DEFAULT = "ttl=150,grace=600,bucket=900,cell=500,rescale=0"
"""The cache before issue 22's tuning (the baseline every variant is compared with)."""
VARIANTS = [
    OLD_DEFAULT,
    "ttl=150,grace=600,bucket=3600,cell=500,rescale=0",
    "ttl=1800,grace=600,bucket=3600,cell=500,rescale=0",
    "ttl=1800,grace=600,bucket=3600,cell=500,rescale=1",
    "ttl=1800,grace=600,bucket=86400,cell=500,rescale=1",
    "default",
]
_KEYS = {"ttl": "ttl_s", "grace": "grace_s", "bucket": "bucket_s", "cell": "cell_m"}


def variant(spec: str) -> tuple[CacheSettings, bool]:
    """The cache settings and whether answers are rescaled, of a ``--variants`` spec."""
    if spec == "default":
        return CacheSettings(), True
    pairs = dict(item.split("=", 1) for item in spec.split(","))
    settings = {_KEYS[k]: float(v) for k, v in pairs.items() if k in _KEYS}
    return CacheSettings(**settings), pairs.get("rescale", "0") == "1"


class MarketVendor:
    """The simulated vendor's answers, in process; counts its requests."""

    name = "simvendor"

    def __init__(self, market: Market) -> None:
        self.market = market
        self.requests = 0

    async def travel_time(self, leg: Leg, *, timeout_s: float) -> TravelTime:
        self.requests += 1
        answer = self.market.route(
            leg.origin_lat, leg.origin_lon, leg.dest_lat, leg.dest_lon, leg.at, "driving"
        )
        return TravelTime(answer.seconds, self.name, answer.metres / 1000.0)

    async def close(self) -> None:
        return None


def truth_s(market: Market, leg: Leg) -> float:
    """The city's travel time for ``leg`` at its time, without the vendor's noise."""
    km = haversine_km_point(leg.origin_lat, leg.origin_lon, leg.dest_lat, leg.dest_lon)
    share = market.speed_share(leg.origin_lat, leg.origin_lon, leg.at)
    return float(truth.travel_s(km, PROFILE_KMH["driving"], share, 1.0))


def requests(orders: list[dict[str, Any]], per_order: int, seed: int = 0) -> list[tuple[Leg, int]]:
    """Every request of the traffic model (module docstring) with its order's index, in
    time order."""
    rng = random.Random(seed)
    legs = []
    for index, row in enumerate(orders):
        created: datetime = row["created_at"]
        offsets = [0.0]
        if per_order >= 2:
            offsets.append(rng.uniform(0.0, TRACK_S))
        offsets += [-rng.uniform(0.0, BROWSE_S) for _ in range(per_order - 2)]
        coords = (row["pickup_lat"], row["pickup_lon"], row["drop_lat"], row["drop_lon"])
        legs += [(Leg(*coords, at=created + timedelta(seconds=o)), index) for o in offsets]
    return sorted(legs, key=lambda asked: asked[0].at)


def change_se_pct(cached: list[float], uncached: list[float], order: list[int]) -> float:
    """Standard error of the MAE change (% of the uncached MAE), clustered by order: an
    order's requests share one cached answer, so they are not independent."""
    per_order: dict[int, float] = {}
    for c, u, o in zip(cached, uncached, order, strict=True):
        per_order[o] = per_order.get(o, 0.0) + c - u
    se = statistics.stdev(per_order.values()) * len(per_order) ** 0.5 / len(cached)
    return float(100.0 * se / statistics.fmean(uncached))


def run(market: Market, legs: list[Leg], spec: str | None) -> dict[str, Any]:
    """Replays ``legs`` through a chain with the cache of ``spec`` (None: uncached)."""
    clock = ManualClock(legs[0].at)
    vendor = MarketVendor(market)
    builtin = BuiltinProvider()
    cache = None
    if spec is not None:
        settings, rescaled = variant(spec)
        rescale: Rescale | None = builtin.ratio if rescaled else None
        store = MemoryCacheStore(clock)
        cache = TravelTimeCache(store, clock, settings, f"bench-{spec}", rescale=rescale)
    chain = ProviderChain([vendor], builtin, clock, cache=cache)

    async def replay() -> list[float]:
        answers = []
        for leg in legs:
            clock.set(max(leg.at, clock.now()))
            answers.append((await chain.travel_time(leg, timeout_s=1.0)).seconds)
            await asyncio.sleep(0)  # background refreshes land before the next request
        return answers

    answers = asyncio.run(replay())
    errors = [abs(a - truth_s(market, leg)) for a, leg in zip(answers, legs, strict=True)]
    return {
        "vendor_requests": vendor.requests,
        "mae_s": statistics.fmean(errors),
        "errors": errors,
        "answers": answers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--orders-per-day", type=int, default=4000)
    parser.add_argument("--per-order", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--variants", nargs="+", default=VARIANTS)
    parser.add_argument("--seed", type=int, default=11, help="the simulation's seed")
    args = parser.parse_args()
    for spec in args.variants:
        variant(spec)  # a bad spec fails before the simulation
    config = SimulationConfig(seed=args.seed, days=args.days, orders_per_day=args.orders_per_day)
    simulation = simulate(config)
    with tempfile.TemporaryDirectory() as tmp:
        write_simulation(simulation, Path(tmp))
        market = Market(Path(tmp))
    orders = list(simulation.orders.iter_rows(named=True))
    figures = []
    for per_order in args.per_order:
        asked = requests(orders, per_order)
        legs, order = [leg for leg, _ in asked], [o for _, o in asked]
        uncached = run(market, legs, None)
        for spec in args.variants:
            cached = run(market, legs, spec)
            figures.append(
                {
                    "requests_per_order": per_order,
                    "variant": spec,
                    "orders": len(orders),
                    "requests": len(legs),
                    "vendor_requests": cached["vendor_requests"],
                    "saved_pct": round(100.0 * (1 - cached["vendor_requests"] / len(legs)), 2),
                    "mae_uncached_s": round(uncached["mae_s"], 2),
                    "mae_cached_s": round(cached["mae_s"], 2),
                    "mae_change_pct": round(100.0 * (cached["mae_s"] / uncached["mae_s"] - 1), 3),
                    "mae_change_se_pct": round(
                        change_se_pct(cached["errors"], uncached["errors"], order), 3
                    ),
                }
            )
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()} CPython {platform.python_version()}",
                "figures": figures,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
