"""Goodput under overload: model answers/s at the model's capacity and at 10x the load.

Usage: python bench/overload_bench.py [--registry DIR] [--blocks 3] [--seconds 10]

Same set-up as ``bench/serve_bench.py`` (its own redis-server filled with the Food
Delivery features, ``arrive serve --workers 2``), two services side by side: the code
before :mod:`arrive.serving.admission` (``--before-src``: a fixed ``max_in_flight``,
shedding at once) and the default admission (adaptive limit, queue-delay shedding). Each block runs
``wrk -t1 -c64`` (the capacity) and ``wrk -t2 -c640`` (10x the concurrency) against each,
alternating which goes first; model answers/s come from ``/metrics`` deltas. Medians of
the blocks are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import serve_bench as sb

from arrive.ingest.importers import import_into, load_mapping
from arrive.registry import LocalRegistry
from arrive.testing.factories import ending_now, random_marketplace, write_data_dir
from arrive.testing.servers.eta_service import ServeProcess, fill_redis, wait_for
from arrive.testing.servers.redis_server import RedisServer
from arrive.training.pipeline import TrainConfig, run_training

POLICIES = {"fixed cap (before)": "0", "queue-delay admission (after)": "1000"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    args = parser.parse_args()
    POLICIES["queue-delay admission (after)"] = args.wait_ms
    with tempfile.TemporaryDirectory(prefix="arrive-overload-") as tmp:
        work = Path(tmp)
        if args.synthetic:
            data, registry, live = _synthetic(work)
        else:
            data = import_into(work / "data", args.csv, load_mapping("food-delivery"))
            registry = sb._registry(args.registry, data, work)
            live = sb._shifted(data, work / "live")
        with RedisServer() as redis:
            print("replaying the event log into redis ...", file=sys.stderr)
            fill_redis(redis.url, live, timeout_s=3600.0)
            bodies = sb._bodies(live, work)["single"]
            runs = _blocks(args, registry, redis.url, bodies, work)
    _print(runs, args)


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
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    services = {}
    for name, wait_ms in POLICIES.items():
        env = {
            "ARRIVE_REGISTRY_DIR": str(registry),
            "ARRIVE_STORE_URL": url,
            "ARRIVE_COMPILE_CACHE_DIR": str(args.cache),
            "ARRIVE_PREDICTION_LOG_DIR": str(work / f"predictions-{wait_ms}"),
            "ARRIVE_MAX_FEATURE_LAG_S": "86400",
            "ARRIVE_LOG_LEVEL": "warning",
            "ARRIVE_ADMISSION_WAIT_MS": wait_ms,
        }
        if args.synthetic:
            env["ARRIVE_COMPILE_BACKEND"] = "none"
        if args.before_src and wait_ms == "0":
            env["PYTHONPATH"] = str(args.before_src.resolve())
            del env["ARRIVE_ADMISSION_WAIT_MS"]
        services[name] = ServeProcess(env, workers=2, log_path=work / f"serve-{wait_ms}.log")
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for service in services.values():
        service.start()
    try:
        for service in services.values():
            service.wait_ready(timeout_s=300)
            if not args.synthetic:
                wait_for(lambda s=service: sb._compiled(s.url), 900, "compiled trees")
            sb._wrk(service.url, bodies, "/v1/eta", conns=16, seconds=5)
        for block in range(args.blocks):
            order = list(services.items())[:: 1 if block % 2 == 0 else -1]
            for name, service in order:
                for conns in (64, 640):
                    threads = 2 if conns > 64 else 1
                    result = sb._counted(
                        service.url,
                        lambda u=service.url, c=conns, t=threads: sb._wrk(
                            u, bodies, "/v1/eta", conns=c, seconds=args.seconds, threads=t
                        ),
                    )
                    result["model_s"] = result["req_s"] * result["model_share"]
                    runs.setdefault((name, conns), []).append(result)
    finally:
        for service in services.values():
            service.stop()
    return runs


def _print(runs: dict[tuple[str, int], list[dict[str, Any]]], args: argparse.Namespace) -> None:
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.blocks} blocks x {args.seconds} s, "
        "medians (2 workers, redis-server and wrk on the same box)\n"
    )
    print(
        "| admission | wrk | req/s | model answers/s | model share | p99 ms | timeouts "
        "| fallbacks (last block) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for (name, conns), results in runs.items():
        med = {
            k: statistics.median(r[k] for r in results)
            for k in ("req_s", "model_s", "model_share", "p99_ms", "timeouts")
        }
        print(
            f"| {name} | -c{conns} | {med['req_s']:,.0f} | {med['model_s']:,.0f} | "
            f"{med['model_share']:.1%} | {med['p99_ms']:.0f} | {med['timeouts']:.0f} | "
            f"{results[-1]['fallbacks'] or '-'} |"
        )
    for name in POLICIES:
        cap = statistics.median(r["model_s"] for r in runs[(name, 64)])
        over = statistics.median(r["model_s"] for r in runs[(name, 640)])
        print(f"\n{name}: model answers/s at -c640 = {over / cap:.0%} of -c64")


if __name__ == "__main__":
    main()
