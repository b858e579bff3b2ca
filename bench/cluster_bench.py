"""/eta on a Redis Cluster against single-node Redis: serve_bench's open-loop load at a fixed
rate, blocks of the two alternating in one run.

Usage: python bench/cluster_bench.py [--registry DIR] [--cache DIR] [--blocks 6] [--seconds 20]
[--rate 1000]

1. The setup of ``bench/serve_bench.py``: the Food Delivery production model of
   ``--registry`` (trained into it when it has none), the event log shifted to end now,
   the last 2,000 orders as requests.
2. A redis-server and a Redis Cluster of three primaries (``redis-cli --cluster create``,
   :class:`~arrive.testing.servers.redis_cluster.RedisClusterServer`), each filled with
   the same replay of the event log.
3. Two ``arrive serve --workers 2``, one on ``redis://`` and one on ``redis+cluster://``,
   both on the compiled trees, each warmed up with 10 s of ``wrk -c16`` (not measured).
4. ``--blocks`` blocks: in each, the open-loop generator of serve_bench (latency from the
   scheduled send time) at ``--rate`` req/s for ``--seconds`` against each service, the
   order of the two alternating from block to block. The idle service waits meanwhile.
5. Prints each arm's medians of the blocks' p50 and p99, every block, and the share of
   model answers (from ``/metrics``), so a fallback cannot pass for a fast answer.

Every process (the services, the four redis-servers, the generator) shares the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import serve_bench as sb

from arrive.testing.servers.eta_service import ServeProcess, fill_redis, wait_for
from arrive.testing.servers.redis_cluster import RedisClusterServer
from arrive.testing.servers.redis_server import RedisServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=sb.DEFAULT_CSV, help="Food Delivery CSV")
    parser.add_argument(
        "--registry", type=Path, default=sb.ROOT / ".arrive" / "bench-registry", help="registry"
    )
    parser.add_argument(
        "--cache", type=Path, default=sb.ROOT / ".arrive" / "bench-compiled", help="trees cache"
    )
    parser.add_argument("--blocks", type=int, default=6, help="blocks (each runs both arms)")
    parser.add_argument("--seconds", type=int, default=20, help="length of each arm's run")
    parser.add_argument("--rate", type=int, default=1000, help="open loop: requests per second")
    args = parser.parse_args()
    if args.blocks < 1 or args.seconds < 1 or args.rate < 1:
        parser.error("--blocks, --seconds and --rate must be positive")
    with tempfile.TemporaryDirectory(prefix="arrive-cluster-bench-") as tmp:
        work = Path(tmp)
        registry, live = sb.market(args.csv, args.registry, work)
        with RedisServer() as single, RedisClusterServer() as cluster:
            urls = {"single": single.url, "cluster": cluster.url}
            for arm, url in urls.items():
                print(f"replaying the event log into {arm} redis ...", file=sys.stderr)
                fill_redis(url, live, timeout_s=3600.0)
            bodies = sb._bodies(live, work)
            runs = _blocks(args, registry, urls, bodies["single"], work)
    _print(runs, args)


def _blocks(
    args: argparse.Namespace, registry: Path, urls: dict[str, str], single: Path, work: Path
) -> dict[str, list[dict[str, Any]]]:
    services = {arm: _service(args, registry, url, work / arm) for arm, url in urls.items()}
    try:
        for service in services.values():
            service.start()
        for arm, service in services.items():
            service.wait_ready(timeout_s=300)
            print(f"waiting for the compiled trees ({arm}) ...", file=sys.stderr)
            wait_for(lambda s=service: sb._compiled(s.url), 900, "compiled trees")  # type: ignore[misc]
            sb._wrk(service.url, single, "/v1/eta", conns=16, seconds=10)  # warm-up
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in services}
        for block in range(args.blocks):
            arms = list(services) if block % 2 == 0 else list(reversed(services))
            for arm in arms:
                url = services[arm].url
                result = sb._counted(
                    url, lambda u=url: sb._open_loop(u, single, args.rate, args.seconds)
                )  # type: ignore[misc]
                print(f"  block {block + 1}, {arm}: {result}", file=sys.stderr)
                runs[arm].append(result)
        return runs
    finally:
        for service in services.values():
            service.stop()


def _service(args: argparse.Namespace, registry: Path, url: str, work: Path) -> ServeProcess:
    work.mkdir(parents=True)
    env = sb.service_env(registry, url, args.cache, work / "predictions")
    return ServeProcess(env, workers=2, log_path=work / "serve.log")


def _print(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    print(f"{args.blocks} blocks of {args.seconds} s at {args.rate} req/s, arms alternating")
    for arm, found in runs.items():
        keys = ("req_s", "p50_ms", "p99_ms", "model_share", "non_2xx")
        medians = {k: round(statistics.median(r[k] for r in found), 3) for k in keys}
        print(f"{arm}: medians {json.dumps(medians)}")
        for run in found:
            print(f"  {json.dumps({k: round(run[k], 3) for k in keys})} {run['fallbacks']}")


if __name__ == "__main__":
    main()
