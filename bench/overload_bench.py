"""Goodput under overload: model answers/s at the model's capacity and at 10x the load.

Usage: PYTHONPATH=src:bench python bench/overload_bench.py [--synthetic] [--blocks 3]
[--seconds 10] [--before-src DIR] [--before-wait-ms MS] [--wait-ms MS]

Same set-up as ``bench/serve_bench.py`` (its own redis-server filled with the Food
Delivery features, ``arrive serve --workers 2``), two services side by side: "before"
(``--before-src``: another checkout's ``src/``, e.g. main's; without it, this code) with
``admission_wait_ms`` ``--before-wait-ms`` (default 0, the fixed cap shedding at once)
and "after" (this code, ``--wait-ms``). Each block runs ``wrk -t1 -c64`` (the capacity)
and ``wrk -t2 -c640`` (10x the concurrency) against each, alternating which goes first;
model answers/s come from ``/metrics`` deltas, the service's CPU per request from
``/proc`` (its processes' user + system time). Medians of the blocks are printed as a
Markdown table.
"""

from __future__ import annotations

import argparse
import functools
import re
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cpu_time
import serve_bench as sb

from arrive.registry import LocalRegistry
from arrive.testing.factories import ending_now, random_marketplace, write_data_dir
from arrive.testing.servers.eta_service import ServeProcess, fill_redis, wait_for
from arrive.testing.servers.redis_server import RedisServer
from arrive.training.pipeline import TrainConfig, run_training

BEFORE, AFTER = "before", "after"
POLICIES = {BEFORE: "0", AFTER: "1000"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_arguments(parser)
    parser.add_argument(
        "--before-src",
        type=Path,
        help="the src/ directory of the code before (e.g. from `git archive`): the first "
        "service runs it; without it, the first service is this code with "
        "ARRIVE_ADMISSION_WAIT_MS=0",
    )
    parser.add_argument(
        "--wait-ms", default="1000", help="admission_wait_ms of the second service (%(default)s)"
    )
    parser.add_argument(
        "--overload-threads",
        type=int,
        nargs="+",
        default=[2],
        help="wrk threads at -c640, one phase each (%(default)s; -c64 always runs -t1)",
    )
    parser.add_argument(
        "--before-wait-ms",
        default="0",
        help="admission_wait_ms of the first service (%(default)s: the fixed cap; "
        "with --before-src, 0 sets none: the code before admission had no such setting)",
    )
    args = parser.parse_args()
    POLICIES[BEFORE], POLICIES[AFTER] = args.before_wait_ms, args.wait_ms
    with tempfile.TemporaryDirectory(prefix="arrive-overload-") as tmp:
        work = Path(tmp)
        registry, live = prepare(args, work)
        with RedisServer() as redis:
            print("replaying the event log into redis ...", file=sys.stderr)
            fill_redis(redis.url, live, timeout_s=3600.0)
            bodies = sb._bodies(live, work)["single"]
            runs = _blocks(args, registry, redis.url, bodies, work)
    _print(runs, args)


def add_setup_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :func:`prepare`, :func:`service_env` and the blocks."""
    parser.add_argument("--csv", type=Path, default=sb.DEFAULT_CSV, help="Food Delivery CSV")
    parser.add_argument(
        "--registry",
        type=Path,
        default=sb.ROOT / ".arrive" / "bench-registry",
        help="registry to serve (production alias); trained into when it has none",
    )
    parser.add_argument("--cache", type=Path, default=sb.ROOT / ".arrive" / "bench-compiled")
    parser.add_argument("--blocks", type=int, default=3, help="blocks; medians reported")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="a small synthetic marketplace and model (LightGBM, no compiled trees) "
        "instead of Food Delivery: minutes less to set up",
    )


def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    """The registry to serve and the data directory to replay (ending now): Food Delivery
    (``args.csv``, ``args.registry``) or, with ``args.synthetic``, a small marketplace."""
    if args.synthetic:
        _, registry, live = _synthetic(work)
        return registry, live
    return sb.market(args.csv, args.registry, work)


def _synthetic(work: Path) -> tuple[Path, Path, Path]:
    """A random marketplace ending now, and a small model trained on it."""
    market = ending_now(random_marketplace(seed=5, n_orders=3000, days=8))
    data = write_data_dir(work / "data", market, "Europe/Berlin")
    registry = LocalRegistry(work / "registry")
    config = TrainConfig(select_groups=False)
    result = run_training(data, work / "run", config, registry)
    registry.set_alias("production", result.version, reason="overload bench")
    return data, registry.root, data


def _blocks(
    args: argparse.Namespace, registry: Path, url: str, bodies: Path, work: Path
) -> dict[tuple[str, int, int], list[dict[str, Any]]]:
    services: dict[str, ServeProcess] = {}
    for name, wait_ms in POLICIES.items():
        env = service_env(args, registry, url, work / f"predictions-{len(services)}")
        env["ARRIVE_ADMISSION_WAIT_MS"] = wait_ms
        if args.before_src and name == BEFORE:
            env["PYTHONPATH"] = str(args.before_src.resolve())
            if wait_ms == "0":  # the code before admission_wait_ms existed refuses it
                del env["ARRIVE_ADMISSION_WAIT_MS"]
        services[name] = ServeProcess(env, workers=2, log_path=work / f"serve-{len(services)}.log")
    runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for service in services.values():
        service.start()
    try:
        warm_up(args, list(services.values()), bodies)
        phases = [(64, 1)] + [(640, n) for n in args.overload_threads]
        for block in range(args.blocks):
            order = list(services.items())[:: 1 if block % 2 == 0 else -1]
            for name, service in order:
                for conns, threads in phases:
                    result = _measured(service, bodies, conns, threads, args.seconds)
                    runs.setdefault((name, conns, threads), []).append(result)
    finally:
        for service in services.values():
            service.stop()
    return runs


def _measured(
    service: ServeProcess, bodies: Path, conns: int, threads: int, seconds: int
) -> dict[str, Any]:
    """One wrk run against ``service``: its figures, the answers' shares, the service's CPU
    (µs per request; model answers per CPU-second) and the mean number in flight."""

    def run() -> dict[str, float]:
        return sb._wrk(
            service.url, bodies, "/v1/eta", conns=conns, seconds=seconds, threads=threads
        )

    result = cpu_time.with_cpu(
        service, lambda: with_in_flight(service.url, lambda: sb._counted(service.url, run))
    )
    result["model_s"] = result["req_s"] * result["model_share"]
    result["cpu_us"] = result["cores"] / max(result["req_s"], 1e-9) * 1e6
    result["model_per_cpu_s"] = result["model_s"] / max(result["cores"], 1e-9)
    return result


def service_env(
    args: argparse.Namespace, registry: Path, url: str, log_dir: Path
) -> dict[str, str]:
    """The environment of one ``arrive serve`` of the bench (compiled trees but with
    ``args.synthetic``)."""
    env = sb.service_env(registry, url, args.cache, log_dir)
    if args.synthetic:
        env["ARRIVE_COMPILE_BACKEND"] = "none"
    return env


def warm_up(args: argparse.Namespace, services: list[ServeProcess], bodies: Path) -> None:
    """Wait until each started service is ready (with its compiled trees), then 5 s of load."""
    for service in services:
        service.wait_ready(timeout_s=300)
        if not args.synthetic:
            wait_for(functools.partial(sb._compiled, service.url), 900, "compiled trees")
        sb._wrk(service.url, bodies, "/v1/eta", conns=16, seconds=5)


def with_in_flight(url: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``, and ``in_flight``: the mean of ``arrive_in_flight`` (admitted requests,
    all workers) sampled from ``/metrics`` every 0.5 s meanwhile (what the limit let in)."""
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            found = re.search(r"^arrive_in_flight ([0-9.e+-]+)$", sb._metrics(url), re.MULTILINE)
            if found:
                samples.append(float(found[1]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = run()
    finally:
        done.set()
        sampler.join()
    result["in_flight"] = statistics.mean(samples) if samples else float("nan")
    return result


def _print(
    runs: dict[tuple[str, int, int], list[dict[str, Any]]], args: argparse.Namespace
) -> None:
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.blocks} blocks x {args.seconds} s, "
        "medians (2 workers, redis-server and wrk on the same box)\n"
    )
    print(
        "| service | wrk | req/s | model answers/s | model share | p99 ms | timeouts "
        "| service CPU µs/req | model answers per service CPU-s | mean in flight "
        "| fallbacks (last block) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    keys = ("req_s", "model_s", "model_share", "p99_ms", "timeouts", "cpu_us")
    for (name, conns, threads), results in runs.items():
        med = {k: statistics.median(r[k] for r in results) for k in (*keys, "model_per_cpu_s")}
        flight = statistics.median(r["in_flight"] for r in results)
        print(
            f"| {name} (wait {POLICIES[name]} ms) | -t{threads} -c{conns} | {med['req_s']:,.0f} | "
            f"{med['model_s']:,.0f} | {med['model_share']:.1%} | {med['p99_ms']:.0f} | "
            f"{med['timeouts']:.0f} | {med['cpu_us']:.0f} | {med['model_per_cpu_s']:,.0f} | "
            f"{flight:.1f} | {results[-1]['fallbacks'] or '-'} |"
        )
    for name in POLICIES:
        for threads in args.overload_threads:
            _print_ratio(name, runs[(name, 64, 1)], runs[(name, 640, threads)], threads)


def _print_ratio(
    name: str, cap: list[dict[str, Any]], over: list[dict[str, Any]], threads: int
) -> None:
    """At -c640 against -c64: model answers/s, and model answers per service CPU-second."""
    for key, what in (("model_s", "model answers/s"), ("model_per_cpu_s", "per service CPU-s")):
        ratios = [o[key] / c[key] for c, o in zip(cap, over, strict=True)]
        median = statistics.median(o[key] for o in over) / statistics.median(c[key] for c in cap)
        blocks = ", ".join(f"{r:.0%}" for r in ratios)
        print(f"\n{name}: {what} at -t{threads} -c640 = {median:.0%} of -c64 (blocks: {blocks})")


if __name__ == "__main__":
    main()
