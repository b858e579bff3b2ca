"""Objects the travel lookup of /eta leaves to the garbage collector, per request, with the
simulated vendor answering after ``--latency-ms`` (issue 22: the slow-vendor p99).

Usage: python bench/provider_garbage.py [--requests 300] [--latency-ms 200 100]

In process: the lookup ``arrive serve`` builds for one OSRM vendor (default settings,
``timeout_ms`` 200), asked for ``--requests`` orders of distinct cache keys at 200 a
second with the service's 25 ms deadline, against ``arrive providers serve-sim`` in its own
process. The collector is off while they run; then one collection with ``DEBUG_SAVEALL``
counts what only it could free (reference cycles), by type, and the frames and exceptions
among them. A reference cycle per request is what made the service's young-generation
collections take ~100 ms (see docs/benchmarks.md). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arrive.ingest.simulator.config import SimulationConfig
from arrive.ingest.simulator.run import simulate, write_simulation
from arrive.schema.events import OrderCreated
from arrive.serving.settings import ServeSettings
from arrive.serving.travel import build_travel
from arrive.testing.servers.vendor_sim import VendorProcess

DEADLINE_S = 0.025
RATE = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[200, 100])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sim = Path(tmp)
        write_simulation(simulate(SimulationConfig(seed=5, days=1, orders_per_day=200)), sim)
        found: dict[str, Any] = {"python": sys.version.split()[0], "requests": args.requests}
        with VendorProcess(sim) as vendor:
            for latency in args.latency_ms:
                vendor.set_faults(latency_ms=latency)
                settings = ServeSettings(
                    providers={"travel": {"simvendor": {"kind": "osrm", "url": vendor.url}}}
                )
                before = sum(vendor.stats()["requests"].values())
                found[f"latency_{latency}_ms"] = asyncio.run(_garbage(settings, args.requests))
                found[f"latency_{latency}_ms"]["vendor_requests"] = (
                    sum(vendor.stats()["requests"].values()) - before
                )
    print(json.dumps(found, indent=2))


def _order(index: int) -> OrderCreated:
    lat = 40.0 + index * 0.01  # a cache key of its own
    return OrderCreated(
        event_id=f"o{index}:c",
        event_time=datetime.now(UTC),
        order_id=f"o{index}",
        pickup_lat=lat,
        pickup_lon=-73.9,
        drop_lat=lat + 0.02,
        drop_lon=-73.88,
    )


async def _garbage(settings: ServeSettings, requests: int) -> dict[str, Any]:
    lookup = build_travel(settings)
    assert lookup is not None
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        asked = []
        for index in range(requests):
            asked.append(asyncio.ensure_future(lookup.times([_order(index)], DEADLINE_S)))
            await asyncio.sleep(1 / RATE)
        answers = await asyncio.gather(*asked)
        await asyncio.sleep(2.5)  # the vendor requests that outlived their callers end
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        await lookup.aclose()
    frames = Counter(
        f"{Path(o.f_code.co_filename).name}:{o.f_code.co_name}"
        for o in garbage
        if type(o).__name__ == "frame"
    )
    return {
        "sources": dict(Counter(found.source for (found,) in answers if found is not None)),
        "objects_per_request": len(garbage) / requests,
        "by_type": dict(Counter(type(o).__name__ for o in garbage).most_common(8)),
        "frames": dict(frames.most_common(8)),
        "exceptions": dict(
            Counter(repr(o)[:60] for o in garbage if isinstance(o, BaseException)).most_common(4)
        ),
    }


if __name__ == "__main__":
    main()
