"""The travel-time cache: vendor calls saved at the simulated marketplace's traffic, the
error its coarse keys add, and the cost of a warm-cache answer.

Usage: python bench/provider_cache_bench.py [--days 2] [--runs 3] [--calls 20000]

1. **Calls saved.** A simulated city (``SimulationConfig(days=DAYS)``: 16,000 orders a
   day) asks the chain once per order, at the order's creation time, for the leg
   store → customer. The vendor answers every leg exactly (road distance ≈ 1.3 ×
   great-circle at a speed by hour); the chain caches by cells × 15-minute bucket. For
   each cell size and TTL: the share of orders answered without a vendor request, and
   the mean absolute error of the answers against the exact leg (what the coarse key
   costs in accuracy), on virtual time (the clock follows the orders).
2. **Warm-cache cost.** Per-call latency of ``chain.travel_time`` answering from a warm
   cache (memory, and Redis on a private loopback server), against asking the built-in
   estimate directly, in the same run: median and p99 over ``--calls`` calls, median of
   ``--runs`` runs.

Prints JSON with every run, the date and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from arrive.clock import ManualClock, SystemClock
from arrive.geo import haversine_km
from arrive.ingest.simulator.config import SimulationConfig
from arrive.ingest.simulator.run import simulate
from arrive.providers.base import Leg, TravelTime, TravelTimeProvider
from arrive.providers.cache import CacheSettings, TravelTimeCache
from arrive.providers.cache_redis import RedisCacheStore
from arrive.providers.cache_store import CacheStore, MemoryCacheStore
from arrive.providers.chain import ProviderChain
from arrive.testing.servers.redis_server import RedisServer

SPEED_KMH_BY_HOUR = [32, 34, 35, 35, 34, 30, 24, 20, 19, 22, 25, 24] * 2


class ExactVendor:
    """Answers each leg exactly: 1.3 × great-circle distance at a speed by hour."""

    name = "vendor"

    def __init__(self) -> None:
        self.requests = 0

    async def travel_time(self, leg: Leg, *, timeout_s: float) -> TravelTime:
        self.requests += 1
        return TravelTime(exact_s(leg), self.name)

    async def close(self) -> None:
        return None


def exact_s(leg: Leg) -> float:
    km = float(haversine_km(leg.origin_lat, leg.origin_lon, leg.dest_lat, leg.dest_lon)) * 1.3
    return km / SPEED_KMH_BY_HOUR[leg.at.hour] * 3600.0


def legs_of_orders(days: int) -> list[Leg]:
    orders = simulate(SimulationConfig(days=days)).orders
    return [
        Leg(
            row["pickup_lat"],
            row["pickup_lon"],
            row["drop_lat"],
            row["drop_lon"],
            row["created_at"],
        )
        for row in orders.iter_rows(named=True)
    ]


def calls_saved(legs: list[Leg], cell_m: float, ttl_s: float) -> dict[str, Any]:
    clock = ManualClock(legs[0].at)
    vendor = ExactVendor()
    settings = CacheSettings(ttl_s=ttl_s, grace_s=0.0, cell_m=cell_m, bucket_s=900.0)
    cache = TravelTimeCache(MemoryCacheStore(clock), clock, settings, f"bench-{cell_m}-{ttl_s}")
    chain = ProviderChain([vendor], vendor, clock, cache=cache)

    async def replay() -> float:
        error = 0.0
        for leg in legs:
            clock.set(max(leg.at, clock.now()))
            answer = await chain.travel_time(leg, timeout_s=1.0)
            error += abs(answer.seconds - exact_s(leg))
        return error / len(legs)

    mae_s = asyncio.run(replay())
    exact_mean = statistics.fmean(exact_s(leg) for leg in legs)
    return {
        "cell_m": cell_m,
        "ttl_s": ttl_s,
        "orders": len(legs),
        "vendor_requests": vendor.requests,
        "saved_pct": round(100.0 * (1 - vendor.requests / len(legs)), 2),
        "mae_added_s": round(mae_s, 2),
        "mae_added_pct_of_mean": round(100.0 * mae_s / exact_mean, 3),
    }


async def warm_latency(store: CacheStore, legs: list[Leg], calls: int) -> dict[str, float]:
    clock = SystemClock()
    vendor = ExactVendor()
    cache = TravelTimeCache(store, clock, CacheSettings(ttl_s=3600.0), "bench-warm")
    chain = ProviderChain([vendor], vendor, clock, cache=cache)
    now = clock.now()
    warm = [Leg(leg.origin_lat, leg.origin_lon, leg.dest_lat, leg.dest_lon, now) for leg in legs]
    for leg in warm:
        await chain.travel_time(leg, timeout_s=1.0)
    before = vendor.requests
    cached_ns = await _timed(chain, warm, calls)
    sent_while_cached = vendor.requests - before
    direct_ns = await _timed(vendor, warm, calls)
    await cache.close()
    return {
        "cached_median_us": statistics.median(cached_ns) / 1000,
        "cached_p99_us": _p99(cached_ns) / 1000,
        "direct_median_us": statistics.median(direct_ns) / 1000,
        "direct_p99_us": _p99(direct_ns) / 1000,
        "vendor_requests_while_cached": sent_while_cached,
    }


async def _timed(provider: TravelTimeProvider, legs: list[Leg], calls: int) -> list[int]:
    spent = []
    for index in range(calls):
        started = time.perf_counter_ns()
        await provider.travel_time(legs[index % len(legs)], timeout_s=1.0)
        spent.append(time.perf_counter_ns() - started)
    return spent


def _p99(values: list[int]) -> float:
    return sorted(values)[math.ceil(0.99 * len(values)) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    legs = legs_of_orders(args.days)
    saved = [
        calls_saved(legs, cell_m, ttl_s)
        for cell_m in (250.0, 500.0, 1000.0)
        for ttl_s in (150.0, 900.0)
    ]
    runs: dict[str, list[dict[str, float]]] = {"memory": [], "redis": []}
    with RedisServer() as server:
        for _ in range(args.runs):
            runs["memory"].append(asyncio.run(_memory_run(legs[:1000], args.calls)))
            runs["redis"].append(asyncio.run(_redis_run(server.url, legs[:1000], args.calls)))
    medians = {
        backend: {key: round(statistics.median(run[key] for run in found), 2) for key in found[0]}
        for backend, found in runs.items()
    }
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()} CPython {platform.python_version()}",
                "calls_saved": saved,
                "warm_cache_medians": medians,
                "warm_cache_runs": runs,
            },
            indent=2,
        )
    )


async def _memory_run(legs: list[Leg], calls: int) -> dict[str, float]:
    return await warm_latency(MemoryCacheStore(SystemClock()), legs, calls)


async def _redis_run(url: str, legs: list[Leg], calls: int) -> dict[str, float]:
    store = RedisCacheStore(url, key_prefix=f"bench:{time.time_ns()}:", timeout_s=1.0)
    return await warm_latency(store, legs, calls)


if __name__ == "__main__":
    main()
