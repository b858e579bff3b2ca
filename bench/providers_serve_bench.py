"""``arrive serve`` with the provider chain under 1,000 req/s (issue 22, figures b and c).

Usage: python bench/providers_serve_bench.py [--seconds 10] [--repeats 3] [--outage-s 60]
[--rate 1000] [--cases warm slow outage] [--slow-rates 200 1000] [--baseline-src DIR]
[--backend none|lleaves] [--workers 1]

Processes (all on this machine): the simulated vendor (``arrive providers serve-sim``),
and ``arrive serve`` (1 worker, LightGBM trees, in-process store filled by the embedded
replay of a small marketplace ending now, default 25 ms deadline) twice: ``plain`` with
no provider and ``provider`` with the vendor configured (OSRM format, default cache).
Load: the open-loop generator of ``bench/serve_bench.py`` at 1,000 req/s over the
latest 2,000 orders (latency from the scheduled send time). Answers by source come from
``arrive_provider_answers_total`` deltas on ``/metrics``; vendor requests from the
vendor's ``/_stats``.

* **b1 warm cache:** the provider service's cache is warmed (3 s passes until every
  answer comes from it, at most 5), then ``--repeats`` × (plain, provider) runs of
  ``--seconds`` each, alternating; p99 medians and the median of the paired differences.
  Both services with ``--workers`` and the trees of ``--backend`` (``lleaves``: once
  compiled; ``none``, the default: LightGBM's own, as the other cases).
* **b2 vendor at 200 ms:** a fresh provider service (cold cache), the vendor answering
  after 200 ms; ``--repeats`` runs of ``--seconds`` at each of ``--slow-rates`` (the first
  run starts cold: it opens the breaker): p99 and answers by source, beside a ``plain``
  service (no provider) whose runs alternate with it: the machine's own p99. With
  ``--baseline-src DIR`` a second service runs another checkout's code (its ``src``
  folder, e.g. the previous commit's, exported to ``/tmp/x/src``) against the same vendor,
  the two services' runs alternating: a before/after in the same run.
* **c outage:** a fresh provider service with ``provider_cache_ttl_s`` = ``--outage-ttl-s``
  (20 s), ``provider_cache_cell_m`` = ``--outage-cell-m`` (500 m, as in the runs before
  the default became 2.5 km; 2500 runs the default) and no grace, 1 s half-open
  interval. A warming pass over the orders at the pace of one TTL (100 req/s for 20 s:
  the entries' ages spread over a TTL, as steady traffic leaves them, not all expiring
  at once), then 1,000 req/s for 10 s healthy, then a run of 3 s + ``--outage-s`` whose
  vendor answers every request with a 503 from its fourth second on (mid-stream: a load
  generator starting with the outage sends nothing for its first moments, which the
  breaker, learning only from calls, cannot see through), then 15 s healthy again. The
  2,000 orders' legs fall in about as many keys, each asked every 2 s: a key misses once
  a TTL, so the vendor is asked about 100 times a second (with TTL 1 s, the earlier
  set-up, every request was a miss: 1,000 vendor requests a second, more than the Python
  vendor on the same cores answers). Breaker state is scraped every 50 ms (each scrape a
  ``/metrics`` request under the load: its send and answer times bound when the state
  was read). The vendor requests of the outage, from the service's counters: those sent
  while the breaker was closed (the failures that open it), those sent while it was open
  or half-open (``arrive_provider_calls_not_closed_total``), and the half-open probes it
  let through (``arrive_provider_probes_total``); and the vendor's own count.

Prints JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from serve_bench import _bodies, _compiled, _open_loop

from arrive.ingest.simulator.config import SimulationConfig
from arrive.ingest.simulator.run import simulate, write_simulation
from arrive.testing.servers.eta_service import ServeProcess, ServiceProbe, wait_for
from arrive.testing.servers.vendor_sim import VendorProcess
from arrive.testing.trained import production_model

LEAD_IN_S = 3
"""Seconds of the outage phase's load before the vendor fails (healthy; counted in it)."""
RATE = 1000
VENDOR = "simvendor"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--outage-s", type=int, default=60)
    parser.add_argument("--rate", type=int, default=RATE, help="requests a second")
    parser.add_argument("--outage-ttl-s", type=float, default=20.0, help="cache TTL (c)")
    parser.add_argument("--outage-cell-m", type=float, default=500.0, help="cache cells (c)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--slow-rates", nargs="+", type=int, default=[200, RATE])
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src folder (b2)")
    parser.add_argument("--backend", default="none", choices=["none", "lleaves"], help="b1's trees")
    parser.add_argument("--workers", type=int, default=1, help="b1's worker processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, registry = _model(work)
        bodies = _bodies(data, work)["single"]
        sim = work / "sim"
        sim.mkdir()
        write_simulation(simulate(SimulationConfig(seed=5, days=1, orders_per_day=200)), sim)
        with VendorProcess(sim) as vendor:
            results: dict[str, Any] = {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()} CPython {platform.python_version()}",
                "rate": args.rate,
            }
            for case in args.cases:
                results[case] = CASES[case](work, data, registry, vendor, bodies, args)
    print(json.dumps(results, indent=2))


def _model(work: Path) -> tuple[Path, Path]:
    made = production_model(
        work,
        seed=3,
        n_orders=3000,
        reason="bench",
        model_params={"n_estimators": 100, "early_stopping_rounds": 1000, "num_leaves": 31},
    )
    return made.data_dir, made.registry_dir


def _service(
    work: Path,
    data: Path,
    registry: Path,
    vendor: VendorProcess | None,
    wait: bool = True,
    wrap: list[str] | None = None,
    workers: int = 1,
    **env: str,
) -> ServeProcess:
    name = f"serve-{len(list(work.glob('serve-*.log')))}"
    settings = {
        "ARRIVE_REGISTRY_DIR": str(registry),
        "ARRIVE_REPLAY_DIR": str(data),
        "ARRIVE_COMPILE_BACKEND": "none",
        "ARRIVE_RELOAD_INTERVAL_S": "0",
        "ARRIVE_MAX_FEATURE_LAG_S": "86400",
        "ARRIVE_PREDICTION_LOG_DIR": str(work / f"{name}-predictions"),
        "ARRIVE_LOG_LEVEL": "warning",
        **env,
    }
    settings = {k: v for k, v in settings.items() if v}  # "" leaves a setting out
    args: tuple[str, ...] = ()
    if vendor is not None:
        config = work / f"{name}.toml"
        config.write_text(f'[providers.travel.{VENDOR}]\nkind = "osrm"\nurl = "{vendor.url}"\n')
        args = ("--config", str(config))
    process = ServeProcess(settings, workers, args=args, log_path=work / f"{name}.log")
    if wrap is not None:  # another entry point instead of ``python -m arrive.cli``
        process.command[:3] = wrap
    process.start()
    if wait:
        process.wait_ready(timeout_s=600)
    return process


def _sources(client: ServiceProbe) -> dict[str, float]:
    text = client.request("GET", "/metrics")[1]
    found: dict[str, float] = {}
    for line in str(text).splitlines():
        if line.startswith("arrive_provider_answers_total{"):
            source = line.split('source="')[1].split('"')[0]
            found[source] = float(line.rsplit(" ", 1)[1])
    return found


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def _breaker_counts(client: ServiceProbe) -> dict[str, float]:
    """The vendor requests sent (all, and while the breaker was not closed) and the probes."""
    names = ("calls_total", "calls_not_closed_total", "probes_total")
    return {n: client.metric(f"arrive_provider_{n}", provider=VENDOR) for n in names}


def _vendor_requests(vendor: VendorProcess) -> int:
    return sum(vendor.stats()["requests"].values())


def _load(process: ServeProcess, bodies: Path, seconds: int, rate: int) -> dict[str, Any]:
    client = ServiceProbe(process.url, process)
    before = _sources(client)
    found: dict[str, Any] = dict(_open_loop(process.url, bodies, rate, seconds))
    found["sources"] = _delta(_sources(client), before)
    return found


def _warm(work: Path, data: Path, registry: Path, vendor: VendorProcess, bodies: Path, args: Any):  # type: ignore[no-untyped-def]
    vendor.clear_faults()
    plain, served = (
        _service(work, data, registry, v, workers=args.workers, ARRIVE_COMPILE_BACKEND=args.backend)
        for v in (None, vendor)
    )
    try:
        if args.backend != "none":
            for url in (plain.url, served.url):
                wait_for(functools.partial(_compiled, url), 900, "compiled trees")
        for _ in range(5):  # warms the cache (2,000 orders) until every answer comes from it
            if set(_load(served, bodies, 3, args.rate)["sources"]) <= {"cache"}:
                break
        _load(plain, bodies, 3, args.rate)
        runs: dict[str, list[dict[str, Any]]] = {"plain": [], "provider": []}
        for _ in range(args.repeats):
            runs["plain"].append(_load(plain, bodies, args.seconds, args.rate))
            runs["provider"].append(_load(served, bodies, args.seconds, args.rate))
    finally:
        plain.stop()
        served.stop()
    medians = {k: statistics.median(r["p99_ms"] for r in v) for k, v in runs.items()}
    paired = [
        p["p99_ms"] - q["p99_ms"] for p, q in zip(runs["provider"], runs["plain"], strict=True)
    ]
    return {
        "p99_median_ms": medians,
        "p99_paired_diff_median_ms": statistics.median(paired),
        "runs": runs,
    }


def _slow(work: Path, data: Path, registry: Path, vendor: VendorProcess, bodies: Path, args: Any):  # type: ignore[no-untyped-def]
    vendor.clear_faults()
    vendor.set_faults(latency_ms=200)
    served = {
        "plain": _service(work, data, registry, None, wait=False),  # the machine's own p99
        "this": _service(work, data, registry, vendor, wait=False),
    }
    if args.baseline_src is not None:
        path = os.pathsep.join([str(args.baseline_src), os.environ.get("PYTHONPATH", "")])
        served["baseline"] = _service(work, data, registry, vendor, wait=False, PYTHONPATH=path)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in served}
    try:
        for process in served.values():
            process.wait_ready(timeout_s=600)
        for rate in args.slow_rates:
            for _ in range(args.repeats):
                for name, process in served.items():
                    before = _vendor_requests(vendor)
                    found = _load(process, bodies, args.seconds, rate)
                    found["vendor_requests"] = _vendor_requests(vendor) - before
                    runs[name].append({"rate": rate, **found})
    finally:
        for process in served.values():
            process.stop()
        vendor.clear_faults()
    medians = {
        name: {
            str(rate): statistics.median(r["p99_ms"] for r in found if r["rate"] == rate)
            for rate in args.slow_rates
        }
        for name, found in runs.items()
    }
    return {"p99_median_ms": medians, "runs": runs}


def _outage(work: Path, data: Path, registry: Path, vendor: VendorProcess, bodies: Path, args: Any):  # type: ignore[no-untyped-def]
    vendor.clear_faults()
    served = _service(
        work,
        data,
        registry,
        vendor,
        ARRIVE_PROVIDER_CACHE_TTL_S=str(args.outage_ttl_s),
        ARRIVE_PROVIDER_CACHE_CELL_M=str(args.outage_cell_m),
        ARRIVE_PROVIDER_CACHE_GRACE_S="0",
        ARRIVE_PROVIDER_BREAKER_OPEN_S="1",
    )
    client = ServiceProbe(served.url, served)
    states: list[tuple[float, float, float]] = []  # scrape sent, answered, state
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            state = client.metric("arrive_provider_breaker_state", provider=VENDOR)
            states.append((sent, time.monotonic(), state))
            stop.wait(0.05)

    phases: dict[str, Any] = {}
    marks: dict[str, float] = {}
    scraper = threading.Thread(target=scrape, daemon=True)
    try:
        ttl_s = max(1, round(args.outage_ttl_s))  # one pass over the orders in a TTL: the
        rate = -(-len(bodies.read_text().splitlines()) // ttl_s)  # entries' ages spread
        phases["warm"] = _load(served, bodies, ttl_s, rate)  # as steady traffic leaves them
        before = _vendor_requests(vendor)
        phases["healthy"] = _load(served, bodies, 10, args.rate)
        phases["healthy"]["vendor_requests"] = _vendor_requests(vendor) - before
        scraper.start()
        phases["outage"] = _outage_phase(served, bodies, vendor, args, marks)
        vendor.clear_faults()
        marks["up"] = time.monotonic()
        phases["after"] = _load(served, bodies, 15, args.rate)
    finally:
        stop.set()
        served.stop()
    opened = next((t for t, _, s in states if t >= marks["down"] and s == 1), None)
    closed = next((t for t, _, s in states if t >= marks["up"] and s == 0), None)
    phases["breaker_opened_by_s"] = _first_seen(states, marks["down"], 1)
    phases["scrape_s_median"] = statistics.median(b - a for a, b, _ in states)
    phases["breaker_open_after_s"] = None if opened is None else opened - marks["down"]
    phases["breaker_closed_after_s"] = None if closed is None else closed - marks["up"]
    phases["half_open_probes_max"] = 1 + args.outage_s  # one per 1 s interval (+ the first)
    counts = phases["outage"]["service_counts"]
    phases["outage"]["split"] = {
        "sent_while_closed": counts.get("calls_total", 0.0)
        - counts.get("calls_not_closed_total", 0.0),
        "sent_while_open_or_half_open": counts.get("calls_not_closed_total", 0.0),
        "probes_admitted": counts.get("probes_total", 0.0),
    }
    return phases


def _outage_phase(
    served: ServeProcess, bodies: Path, vendor: VendorProcess, args: Any, marks: dict[str, float]
) -> dict[str, Any]:
    """``LEAD_IN_S`` + ``--outage-s`` of load whose vendor fails after the lead-in.

    Mid-stream: a load generator that starts with the outage sends nothing for its first
    moments, and the breaker, which learns only from calls, cannot see through that.
    """
    at_down: dict[str, Any] = {}
    probe = ServiceProbe(served.url, served)

    def down() -> None:
        at_down["vendor"], at_down["service"] = _vendor_requests(vendor), _breaker_counts(probe)
        vendor.set_faults(error_rate=1.0)
        marks["down"] = time.monotonic()

    failing = threading.Timer(LEAD_IN_S, down)
    failing.start()
    phase = _load(served, bodies, LEAD_IN_S + args.outage_s, args.rate)
    failing.join()
    phase["lead_in_s"] = LEAD_IN_S
    phase["vendor_requests"] = _vendor_requests(vendor) - at_down["vendor"]
    phase["service_counts"] = _delta(_breaker_counts(probe), at_down["service"])
    return phase


def _first_seen(states: list[tuple[float, float, float]], since: float, state: float) -> Any:
    """Seconds after ``since`` by which the scrapes saw ``state``: the answer time of the
    first scrape sent after ``since`` that shows it (an upper bound; the scrape's send
    time, the value the earlier figure reports, is a lower one)."""
    seen = next((b for a, b, s in states if a >= since and s == state), None)
    return None if seen is None else seen - since


CASES = {"warm": _warm, "slow": _slow, "outage": _outage}


if __name__ == "__main__":
    main()
