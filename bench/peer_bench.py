"""Arrive beside its peers, in one run on this machine: the same Redis features, the same
booster, the same orders and the same load generator.

Usage: python bench/peer_bench.py [--registry DIR] [--repeats 3] [--seconds 15]
(the peer needs ``pip install -e .[peer]``; wrk as for ``serve_bench.py``).

1. The setup of ``serve_bench.py``: the production model of ``--registry`` (trained on
   Food Delivery when it has none), a redis-server of its own filled with the event log
   shifted to end now, the last 2,000 orders as requests.
2. Three services with 2 workers each: ``arrive serve``; the bare path
   (``bare_path.py``: raw ASGI, one MGET, lleaves); the peer (``peer_app.py``: FastAPI,
   pydantic, redis.asyncio, LightGBM with ``num_threads=1``).
3. Checks the bare path's and the peer's answers against an offline prediction of 50
   orders (:func:`bare_path.check`) and stops if any differs; Arrive's answers must
   come from the model (its share of model answers is printed per run).
4. Per ``--repeats``: ``wrk -t1 -c16`` and ``-c64`` on /v1/eta and ``wrk -t1 -c1`` on
   /v1/eta/batch (100 orders), the three services one after the other in an order that
   rotates each repeat. Medians are printed, with Arrive's throughput over each peer's.

Arrive computes every feature the model needs (request-time features, staleness) and
logs and counts every answer; the bare path and the peer read only the stored features.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bare_path
import serve_bench

from arrive import datadir
from arrive.testing.servers.eta_service import ServeProcess, order_body, wait_for

ARMS = ("arrive", "bare path", "peer (FastAPI)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=serve_bench.DEFAULT_CSV)
    parser.add_argument(
        "--registry", type=Path, default=serve_bench.ROOT / ".arrive" / "bench-registry"
    )
    parser.add_argument(
        "--cache", type=Path, default=serve_bench.ROOT / ".arrive" / "bench-compiled"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    serve_bench.require_wrk(parser)
    with tempfile.TemporaryDirectory(prefix="arrive-peer-bench-") as tmp:
        work = Path(tmp)
        with serve_bench.filled_market(args.csv, args.registry, work) as (registry, live, url):
            bodies = serve_bench._bodies(live, work)
            sample = [
                order_body(row)
                for row in datadir.read_orders(live)
                .sort("created_at")
                .tail(50)
                .iter_rows(named=True)
            ]
            results = _run(args, registry, url, bodies, sample, work)
    _print(results, args)


def _run(
    args: argparse.Namespace,
    registry: Path,
    url: str,
    bodies: dict[str, Path],
    sample: list[dict[str, Any]],
    work: Path,
) -> dict[str, dict[str, Any]]:
    env = serve_bench.service_env(registry, url, args.cache, work / "predictions")
    with ServeProcess(env, workers=2, log_path=work / "serve.log") as service:
        service.wait_ready(timeout_s=300)
        print("waiting for the compiled trees ...", file=sys.stderr)
        wait_for(lambda: serve_bench._compiled(service.url), 900, "compiled trees")
        bare = serve_bench._bare_path(registry, args.cache, url, work)
        peer = serve_bench.uvicorn_app(
            "peer_app:create",
            {"PEER_REGISTRY": str(registry), "PEER_REDIS": url},
            work / "peer.log",
        )
        with bare, peer:
            bare.wait_ready(timeout_s=300)
            peer.wait_ready(timeout_s=300)
            model = bare_path.production(registry)
            for name, app in (("bare path", bare), ("peer", peer)):
                checked = bare_path.check(app.url, model, url, sample)
                print(f"{name} against the offline prediction: {checked}", file=sys.stderr)
                if checked["mismatches"]:
                    raise SystemExit(f"the {name} answers differ from the offline prediction")
            urls = dict(zip(ARMS, (service.url, bare.url, peer.url), strict=True))
            print("warming up (5 s each, not measured) ...", file=sys.stderr)
            for target in urls.values():
                serve_bench._wrk(target, bodies["single"], "/v1/eta", conns=16, seconds=5)
            return _phases(args, bodies, urls)


def _phases(
    args: argparse.Namespace, bodies: dict[str, Path], urls: dict[str, str]
) -> dict[str, dict[str, Any]]:
    single, batch, seconds = bodies["single"], bodies["batch"], args.seconds
    phases: dict[str, Callable[[str], dict[str, float]]] = {
        "wrk -c16": lambda u: serve_bench._wrk(u, single, "/v1/eta", conns=16, seconds=seconds),
        "wrk -c64": lambda u: serve_bench._wrk(u, single, "/v1/eta", conns=64, seconds=seconds),
        "batch 100, wrk -c1": lambda u: serve_bench._wrk(
            u, batch, "/v1/eta/batch", conns=1, seconds=seconds
        ),
    }
    out: dict[str, dict[str, Any]] = {}
    for phase, run in phases.items():
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
        for repeat in range(args.repeats):
            order = ARMS[repeat % 3 :] + ARMS[: repeat % 3]  # each arm first once in three
            for arm in order:
                url = urls[arm]
                if arm == "arrive":
                    result = serve_bench._counted(url, lambda r=run, u=url: r(u))  # type: ignore[misc]
                else:
                    result = run(url)
                    print(f"  {arm}: {result}", file=sys.stderr)
                runs[arm].append(result)
        out[phase] = {arm: serve_bench._medians(r) for arm, r in runs.items()}
    return out


def _print(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.repeats} repeats x {args.seconds} s, "
        "medians (2 workers each; redis-server and wrk on the same machine)\n"
    )
    print("| phase | service | req/s (runs) | p50 ms | p99 ms | non-2xx | Arrive / it |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for phase, arms in results.items():
        ours = arms["arrive"]["req_s"]
        for arm, r in arms.items():
            runs = " / ".join(f"{x['req_s']:,.0f}" for x in r["runs"])
            ratio = "" if arm == "arrive" else f"{ours / r['req_s']:.2f}x"
            model = f" (model {r['model_share']:.1%})" if "model_share" in r else ""
            print(
                f"| {phase} | {arm}{model} | {r['req_s']:,.0f} ({runs}) | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['non_2xx']:.0f} | {ratio} |"
            )


if __name__ == "__main__":
    main()
