"""The cost of serving a rollout: latency at a fixed rate with one model, with a rollout
in canary (two models loaded, units split 50/50), and in shadow (every answer scored
again by the candidate off the hot path), in alternating blocks of one run.

Usage: python bench/rollout_serve_bench.py [--repeats 3] [--seconds 10] [--rate 1000]

1. Trains a small model on a synthetic marketplace whose log ends now (the fault
   suite's recipe: :func:`arrive.testing.factories.random_marketplace`), registers a
   copy of it as the candidate, fills a throw-away redis-server with its features.
2. Starts ``arrive serve --workers 2`` on it with ``--compile-backend`` (default
   ``lleaves``, the service's default: the bench waits for the compiled trees; the
   candidate, a copy, hits the compiled-trees cache and then costs the same; ``none``
   serves LightGBM's own trees).
3. For each repeat, in turn: no rollout, a rollout at canary 50 %, a rollout in shadow;
   each block switches the registry's rollout (``Rollouts.start`` / ``abort``), waits
   until 20 answers in a row show it, sends 3 s of unmeasured traffic, then runs the
   open-loop generator of ``bench/serve_bench.py`` at ``--rate`` requests per second
   for ``--seconds`` (one order per request, 2,000 orders of distinct customers;
   latency counted from the scheduled send time). Shadow work scored and dropped
   comes from ``/metrics`` deltas.
4. Overload, in shadow: ``wrk -t2 -c640`` for ``--seconds``; the shadow drop rate.

Medians over the repeats are printed as JSON. The generator, redis-server and the two
workers share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_bench import _compiled, _counted, _open_loop, _wrk

from arrive.monitoring.metrics import MULTIPROC_ENV
from arrive.registry import LocalRegistry
from arrive.rollout.control import Rollouts
from arrive.rollout.plan import RolloutPlan
from arrive.testing.factories import ending_now, random_marketplace, write_data_dir
from arrive.testing.servers.eta_service import (
    ServeProcess,
    fill_redis,
    order_body,
    wait_for,
)
from arrive.testing.servers.redis_server import RedisServer
from arrive.training.pipeline import TrainConfig, run_training

PLANS = {
    "canary": RolloutPlan(shadow_minutes=0, steps=(50.0, 100.0)),
    "shadow": RolloutPlan(shadow_minutes=600, steps=(50.0, 100.0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="blocks of each mode")
    parser.add_argument("--seconds", type=int, default=10, help="length of each block")
    parser.add_argument("--rate", type=int, default=1000, help="requests per second")
    parser.add_argument(
        "--compile-backend",
        choices=("lleaves", "none"),
        default="lleaves",
        help="the service's compile_backend (default %(default)s, the service's own)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arrive-rollout-bench-") as tmp:
        work = Path(tmp)
        print("training a small model ...", file=sys.stderr)
        market = ending_now(random_marketplace(seed=3, n_orders=4000, days=10))
        data = write_data_dir(work / "data", market, "Europe/Berlin")
        registry = LocalRegistry(work / "registry")
        result = run_training(data, work / "run", TrainConfig(select_groups=False), registry)
        control = result.version or ""
        registry.set_alias("production", control, reason="rollout bench")
        candidate = registry.register(dict(registry.open(control).files), {}).version
        rows = market.orders.sort("created_at").tail(2000).iter_rows(named=True)
        bodies = work / "orders.jsonl"
        bodies.write_text(
            "".join(
                json.dumps(order_body(row, customer_id=f"c{i}")) + "\n"
                for i, row in enumerate(rows)
            )
        )
        (work / "metrics").mkdir()
        with RedisServer() as redis:
            fill_redis(redis.url, data)
            env = {
                "ARRIVE_REGISTRY_DIR": str(registry.root),
                "ARRIVE_STORE_URL": redis.url,
                "ARRIVE_COMPILE_BACKEND": args.compile_backend,
                "ARRIVE_COMPILE_CACHE_DIR": str(work / "compiled"),
                "ARRIVE_PREDICTION_LOG_DIR": str(work / "predictions"),
                "ARRIVE_MAX_FEATURE_LAG_S": "86400",
                "ARRIVE_RELOAD_INTERVAL_S": "0",
                "ARRIVE_LOG_LEVEL": "warning",
                MULTIPROC_ENV: str(work / "metrics"),
            }
            with ServeProcess(env, workers=2, log_path=work / "serve.log") as service:
                service.wait_ready(timeout_s=300)
                if args.compile_backend != "none":
                    print("waiting for the compiled trees ...", file=sys.stderr)
                    wait_for(lambda: _compiled(service.url), 900, "compiled trees")
                out = _blocks(args, service.url, Rollouts(registry), candidate, bodies)
    print(json.dumps(out, indent=2))


def _blocks(
    args: argparse.Namespace, url: str, rollouts: Rollouts, candidate: str, bodies: Path
) -> dict[str, Any]:
    probe = json.loads(bodies.read_text().splitlines()[0])
    runs: dict[str, list[dict[str, Any]]] = {"one model": [], "canary": [], "shadow": []}
    _open_loop(url, bodies, args.rate, 5)  # warm-up, not measured
    for repeat in range(args.repeats):
        for mode, found in runs.items():
            rollout = _switch(url, rollouts, candidate, mode, probe)
            _open_loop(url, bodies, args.rate, 3)  # the switch settles, not measured
            before = _shadow_counts(url)
            result = _counted(url, lambda: _open_loop(url, bodies, args.rate, args.seconds))
            result |= _dropped(before, _shadow_counts(url))
            print(f"  {repeat} {mode} ({rollout}): {result}", file=sys.stderr)
            found.append(result)
    _switch(url, rollouts, candidate, "shadow", probe)
    before = _shadow_counts(url)
    overload = _counted(
        url, lambda: _wrk(url, bodies, "/v1/eta", conns=640, seconds=args.seconds, threads=2)
    )
    overload |= _dropped(before, _shadow_counts(url))
    print(f"  overload (shadow): {overload}", file=sys.stderr)
    _switch(url, rollouts, candidate, "one model", probe)
    out: dict[str, Any] = {mode: _medians(found) for mode, found in runs.items()}
    out["overload wrk -t2 -c640, shadow"] = overload
    for mode in ("canary", "shadow"):
        out[f"p99 {mode} - one model, ms (median of paired blocks)"] = statistics.median(
            b["p99_ms"] - a["p99_ms"] for a, b in zip(runs["one model"], runs[mode], strict=True)
        )
    out["runs"] = runs
    return out


def _switch(url: str, rollouts: Rollouts, candidate: str, mode: str, probe: dict[str, Any]) -> str:
    """Abort the active rollout, start ``mode``'s, wait until answers show it."""
    current = rollouts.status()
    if current is not None and current.active:
        rollouts.abort(actor="bench")
    wanted = None
    if mode in PLANS:
        wanted = rollouts.start(candidate, PLANS[mode], actor="bench").id
    streak = [0]

    def shown() -> bool:
        streak[0] = streak[0] + 1 if _eta(url, probe).get("rollout") == wanted else 0
        return streak[0] >= 20

    wait_for(shown, 120, f"the workers to serve {mode}")
    return str(wanted)


def _eta(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url + "/v1/eta", data=json.dumps(body).encode(), method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.loads(answer.read()))


def _shadow_counts(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = {"scored": 0.0, "dropped": 0.0}
    for name, value in re.findall(
        r"^arrive_shadow_(scored|dropped)_total(?:\{[^}]*\})? (\S+)$", text, re.M
    ):
        found[name] += float(value)
    return found


def _dropped(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    scored = after["scored"] - before["scored"]
    dropped = after["dropped"] - before["dropped"]
    total = scored + dropped
    return {
        "shadow_scored": scored,
        "shadow_dropped": dropped,
        "shadow_drop_rate": dropped / total if total else 0.0,
    }


def _medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    numbers = [key for key, value in runs[0].items() if isinstance(value, float)]
    return {key: statistics.median(run[key] for run in runs) for key in numbers}


if __name__ == "__main__":
    main()
