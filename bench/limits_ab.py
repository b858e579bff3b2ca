"""The cost of the request limits on the hot path: the service with them against the same
service without them (an older source tree), alternating short wrk runs in one session.

Usage: python bench/limits_ab.py --baseline-src DIR [--repeats 5] [--seconds 10]

``DIR`` is the ``src`` directory of a checkout without the limits, e.g.
``git archive 584e1ff src | tar -x -C /tmp/base`` then ``--baseline-src /tmp/base/src``.

1. Writes a random marketplace whose events end now, trains a small model on it.
2. Starts both services (``arrive serve --workers N``, default 1, the embedded store replaying
   the marketplace, LightGBM trees unless ``--compile lleaves``), each ready.
3. Runs ``wrk -t1 -cN`` for ``--seconds`` on ``/v1/eta`` with the marketplace's latest
   orders, for each connection count, ``--repeats`` times, the two services
   alternating (new, base, base, new, ...) so that drift of the shared host's speed
   falls on both; prints the medians of throughput, p50 and p99 per service.

The load generator and both services share the machine's cores; run it on a quiet host.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from serve_bench import _wrk  # type: ignore[import-not-found]

from arrive.registry import LocalRegistry
from arrive.testing.factories import ending_now, random_marketplace, write_data_dir
from arrive.testing.servers.eta_service import ServeProcess, order_body
from arrive.training.pipeline import TrainConfig, run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline-src", type=Path, required=True, help="src directory without the limits"
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per service and load")
    parser.add_argument("--seconds", type=int, default=10, help="length of each run")
    parser.add_argument(
        "--conns", type=int, nargs="+", default=[16, 64], help="wrk connection counts"
    )
    parser.add_argument("--compile", choices=["none", "lleaves"], default="none")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per service")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install wrk")
    if not (args.baseline_src / "arrive" / "cli").is_dir():
        parser.error(f"--baseline-src {args.baseline_src}: not an arrive source tree")
    with tempfile.TemporaryDirectory(prefix="arrive-limits-ab-") as tmp:
        results = _run(args, Path(tmp))
    _print(results, args)


def _run(args: argparse.Namespace, work: Path) -> dict[str, dict[int, list[dict[str, float]]]]:
    market = ending_now(random_marketplace(seed=5, n_orders=3000, days=10))
    data = write_data_dir(work / "data", market)
    registry = LocalRegistry(work / "registry")
    config = TrainConfig(select_groups=False, model_params={"n_estimators": 200})
    trained = run_training(data, work / "run", config, registry)
    registry.set_alias("production", trained.version, reason="limits bench")
    bodies = work / "orders.jsonl"
    latest = market.orders.sort("created_at").tail(500).iter_rows(named=True)
    bodies.write_text("".join(json.dumps(order_body(r)) + "\n" for r in latest))
    env = {
        "ARRIVE_REGISTRY_DIR": str(registry.root),
        "ARRIVE_REPLAY_DIR": str(data),
        "ARRIVE_COMPILE_BACKEND": args.compile,
        "ARRIVE_COMPILE_CACHE_DIR": str(work / "compiled"),
        "ARRIVE_PREDICTION_LOG_DIR": str(work / "predictions"),
        "ARRIVE_LOG_LEVEL": "warning",
    }
    base_env = {**env, "PYTHONPATH": str(args.baseline_src.resolve())}
    out: dict[str, dict[int, list[dict[str, float]]]] = {"limits": {}, "baseline": {}}
    with (
        ServeProcess(env, workers=args.workers, log_path=work / "limits.log") as new,
        ServeProcess(base_env, workers=args.workers, log_path=work / "base.log") as base,
    ):
        new.wait_ready(300)
        base.wait_ready(300)
        print("warming up ...", file=sys.stderr)
        for service in (new, base):
            _wrk(service.url, bodies, "/v1/eta", conns=16, seconds=5)
        for conns in args.conns:
            for repeat in range(args.repeats):
                order = [("limits", new), ("baseline", base)]
                for name, service in order if repeat % 2 == 0 else order[::-1]:
                    run = _wrk(service.url, bodies, "/v1/eta", conns=conns, seconds=args.seconds)
                    out[name].setdefault(conns, []).append(run)
                    print(f"{name} c{conns}: {run}", file=sys.stderr)
    return out


def _print(results: dict[str, dict[int, list[dict[str, float]]]], args: argparse.Namespace) -> None:
    runs = f"{args.seconds} s runs, {args.repeats} per cell, {args.workers} worker(s)"
    print(f"wrk -t1, {runs}; medians")
    print("| load | service | req/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---:|---:|---:|---:|")
    for conns in args.conns:
        for name in ("baseline", "limits"):
            runs = results[name][conns]
            cell: dict[str, Any] = {
                k: statistics.median(r[k] for r in runs) for k in ("req_s", "p50_ms", "p99_ms")
            }
            errors = sum(r["non_2xx"] + r["timeouts"] for r in runs)
            print(
                f"| -c{conns} | {name} | {cell['req_s']:.0f} | {cell['p50_ms']:.2f} "
                f"| {cell['p99_ms']:.2f} | {errors:.0f} |"
            )


if __name__ == "__main__":
    main()
