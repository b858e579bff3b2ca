"""The ETA service scaled out: ``arrive serve`` with 1, 2 and 4 workers on one machine.

Usage: PYTHONPATH=src:bench python bench/scaleout_bench.py [--synthetic] [--blocks 3]
[--seconds 10] [--rate 500] [--workers 1 2 4]

The set-up is ``bench/overload_bench.py``'s (imported): its own redis-server filled with
the Food Delivery features (or ``--synthetic``: a small marketplace and a LightGBM model),
then one ``arrive serve --workers N`` per N, all started at once. Each block runs, against
each service in turn (the order rotates from block to block, so none always goes first):

* ``wrk -t1 -c64`` for ``--seconds``: the sustained throughput, its p99, the share of
  model answers (``/metrics`` deltas) and the CPU the service's processes used
  (``/proc``: user + system time of the supervisor and its workers), hence **requests
  per CPU-second of the service**, the figure that carries to a machine with more cores,
  and the redis-server's CPU per request (``INFO cpu``);
* an open-loop generator at ``--rate`` req/s (``serve_bench``'s: latency from the
  scheduled send time, no coordinated omission): p50 and p99 at a fixed modest load.

Medians of the blocks are printed as a Markdown table. wrk, the generator and
redis-server run on the same machine as the workers and take their share of its cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cpu_time
import overload_bench as ob
import redis
import serve_bench as sb

from arrive.testing.servers.eta_service import ServeProcess, fill_redis
from arrive.testing.servers.redis_server import RedisServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ob.add_setup_arguments(parser)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts (%(default)s)"
    )
    parser.add_argument(
        "--rate", type=int, default=500, help="open-loop phase: requests per second"
    )
    args = parser.parse_args()
    if any(n < 1 for n in args.workers) or args.rate < 1:
        parser.error("--workers and --rate must be positive")
    with tempfile.TemporaryDirectory(prefix="arrive-scaleout-") as tmp:
        work = Path(tmp)
        registry, live = ob.prepare(args, work)
        with RedisServer() as redis:
            print("replaying the event log into redis ...", file=sys.stderr)
            fill_redis(redis.url, live, timeout_s=3600.0)
            bodies = sb._bodies(live, work)["single"]
            runs = _blocks(args, registry, redis.url, bodies, work)
    _print(runs, args)


def _blocks(
    args: argparse.Namespace, registry: Path, url: str, bodies: Path, work: Path
) -> dict[tuple[int, str], list[dict[str, Any]]]:
    services = {
        n: ServeProcess(
            ob.service_env(args, registry, url, work / f"predictions-{n}"),
            workers=n,
            log_path=work / f"serve-{n}.log",
        )
        for n in args.workers
    }
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    store = redis.Redis.from_url(url)
    for service in services.values():
        service.start()
    try:
        ob.warm_up(args, list(services.values()), bodies)
        for block in range(args.blocks):
            shift = block % len(services)
            order = list(services.items())[shift:] + list(services.items())[:shift]
            for n, service in order:
                for phase, result in _phases(args, service, bodies, store).items():
                    runs.setdefault((n, phase), []).append(result)
    finally:
        for service in services.values():
            service.stop()
    return runs


def _phases(
    args: argparse.Namespace, service: ServeProcess, bodies: Path, store: redis.Redis
) -> dict[str, dict[str, Any]]:
    url, seconds = service.url, args.seconds
    redis_cpu, start = _redis_cpu_s(store), time.monotonic()
    wrk = cpu_time.with_cpu(
        service,
        lambda: sb._counted(
            url, lambda: sb._wrk(url, bodies, "/v1/eta", conns=64, seconds=seconds)
        ),
    )
    redis_cores = (_redis_cpu_s(store) - redis_cpu) / (time.monotonic() - start)
    wrk["model_s"] = wrk["req_s"] * wrk["model_share"]
    wrk["req_per_cpu_s"] = wrk["req_s"] / max(wrk["cores"], 1e-9)
    wrk["redis_us_per_req"] = redis_cores / max(wrk["req_s"], 1e-9) * 1e6
    steady = sb._counted(url, lambda: sb._open_loop(url, bodies, args.rate, seconds))
    return {"wrk -t1 -c64": wrk, f"open loop {args.rate}/s": steady}


def _redis_cpu_s(store: redis.Redis) -> float:
    """The redis-server's CPU seconds so far (``INFO cpu``: user + system, main thread
    and children)."""
    info = store.info("cpu")
    return sum(float(info[k]) for k in ("used_cpu_sys", "used_cpu_user"))


def _print(runs: dict[tuple[int, str], list[dict[str, Any]]], args: argparse.Namespace) -> None:
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {args.blocks} "
        f"blocks x {args.seconds} s, medians (redis-server and the load generator on the box)\n"
    )
    print(
        "| workers | phase | req/s | model answers/s | p50 ms | p99 ms | service cores "
        "| req per service CPU-second | redis-server CPU µs/req | timeouts | non-2xx |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (n, phase), results in runs.items():
        med = {
            k: statistics.median(r.get(k, float("nan")) for r in results)
            for k in results[0]
            if k != "fallbacks"
        }
        model = f"{med['model_s']:,.0f}" if "model_s" in med else "-"
        cores = f"{med['cores']:.2f}" if "cores" in med else "-"
        per_cpu = f"{med['req_per_cpu_s']:,.0f}" if "req_per_cpu_s" in med else "-"
        in_redis = f"{med['redis_us_per_req']:.0f}" if "redis_us_per_req" in med else "-"
        print(
            f"| {n} | {phase} | {med['req_s']:,.0f} | {model} | {med['p50_ms']:.1f} | "
            f"{med['p99_ms']:.1f} | {cores} | {per_cpu} | {in_redis} | {med['timeouts']:.0f} | "
            f"{med['non_2xx']:.0f} |"
        )


if __name__ == "__main__":
    main()
