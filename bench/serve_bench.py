"""The ETA service under load: wrk and an open-loop generator against ``arrive serve``.

Usage: python bench/serve_bench.py [--registry DIR] [--repeats 3] [--seconds 30]
(or ``./dev bench``, which installs wrk first).

1. Serves the production model of ``--registry DIR`` (default ``.arrive/bench-registry``),
   training a Food Delivery model into it first when it has none.
2. Starts its own redis-server on a free port and fills it with real features: the
   Food Delivery event log, shifted so that it ends now, replayed through the online
   engine (the requests are its last orders, so their features are fresh).
3. Starts ``arrive serve --workers 2 --store redis://...``, waits until readiness
   is 200 and ``arrive_model_info`` shows the compiled (lleaves) trees, then warms
   up with 10 s of load that is not measured.
4. Measures, each ``--repeats`` times (medians reported):
   * max sustained single-order throughput: ``wrk -t1 -c16`` and ``-c64``;
   * latency at a fixed 1,000 req/s: an open-loop generator (wrk2 is not in Debian
     and wrk is closed-loop); latency counts from the scheduled send time, so a
     stalled server cannot hide its queue (no coordinated omission); the generator
     runs on uvloop with its garbage collector off, so its own pauses are not
     counted;
   * a batch of 100 orders: ``wrk -t1 -c1`` on /v1/eta/batch (p50/p99);
   * overload: ``wrk -t2 -c640`` (10x the 64-connection concurrency): throughput,
     p99, socket timeouts, and the share of ``overload`` answers (from /metrics).
   The answers' fallback reasons during each phase come from ``/metrics`` deltas.
5. Runs the first four phases against the bare path too (``bench/bare_path.py``:
   uvicorn, one MGET, the same lleaves code, nothing else; 2 workers, the same
   orders and Redis), each of its runs next to one of the service's (after it, then
   before the next, alternating): the host's speed drifts a lot, so each of the
   service's figures has a baseline taken under the same conditions.

The load generator, redis-server and the two workers share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import uvloop

from arrive import datadir
from arrive.ingest.importers import import_into, load_mapping
from arrive.registry import LocalRegistry
from arrive.testing.servers.eta_service import (
    HOST,
    ServeProcess,
    fill_redis,
    order_body,
    wait_for,
)
from arrive.testing.servers.redis_server import RedisServer
from arrive.training.pipeline import TrainConfig, run_training

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "food_delivery.csv.gz"
LUA = ROOT / "bench" / "serve_orders.lua"
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--csv", type=Path, default=DEFAULT_CSV, help="Food Delivery CSV (default %(default)s)"
    )
    parser.add_argument(
        "--registry",
        type=Path,
        default=ROOT / ".arrive" / "bench-registry",
        help="registry to serve (production alias); trained into when it has none",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / ".arrive" / "bench-compiled",
        help="compiled-trees cache shared by the runs (default %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each phase; medians reported"
    )
    parser.add_argument("--seconds", type=int, default=30, help="length of each run")
    parser.add_argument(
        "--rate", type=int, default=1000, help="open-loop phase: requests per second"
    )
    args = parser.parse_args()
    require_wrk(parser)
    with tempfile.TemporaryDirectory(prefix="arrive-serve-bench-") as tmp:
        work = Path(tmp)
        with filled_market(args.csv, args.registry, work) as (registry, live, url):
            bodies = _bodies(live, work)
            results = _run_phases(args, registry, url, bodies, work)
    _print(results, args)


def market(csv: Path, registry: Path, work: Path) -> tuple[Path, Path]:
    """Food Delivery imported from ``csv`` under ``work``: the registry to serve (trained
    into ``registry`` when it has no production model) and the data directory moved to
    end now, to replay into the store."""
    data = import_into(work / "data", csv, load_mapping("food-delivery"))
    return _registry(registry, data, work), _shifted(data, work / "live")


def require_wrk(parser: argparse.ArgumentParser) -> None:
    """Stop with a usage error when wrk is not installed."""
    if shutil.which("wrk") is None:
        parser.error(
            "wrk is not installed: run ./dev bench (it installs wrk) or apt-get install wrk"
        )


@contextmanager
def filled_market(csv: Path, registry: Path, work: Path) -> Iterator[tuple[Path, Path, str]]:
    """:func:`market`, with a redis-server of its own filled by the replay of the live
    data: the registry, the live data directory and the server's URL."""
    served, live = market(csv, registry, work)
    with RedisServer() as redis:
        print("replaying the event log into redis ...", file=sys.stderr)
        fill_redis(redis.url, live, timeout_s=3600.0)
        yield served, live, redis.url


def service_env(registry: Path, url: str, cache: Path, log_dir: Path) -> dict[str, str]:
    """The environment of one bench ``arrive serve``: ``registry``'s production model on
    the store at ``url``, compiled trees cached in ``cache``, predictions logged into
    ``log_dir``, features a day old still fresh (the replay ends now), warnings only."""
    return {
        "ARRIVE_REGISTRY_DIR": str(registry),
        "ARRIVE_STORE_URL": url,
        "ARRIVE_COMPILE_CACHE_DIR": str(cache),
        "ARRIVE_PREDICTION_LOG_DIR": str(log_dir),
        "ARRIVE_MAX_FEATURE_LAG_S": "86400",
        "ARRIVE_LOG_LEVEL": "warning",
    }


def _registry(root: Path, data: Path, work: Path) -> Path:
    """``root`` with a production model, trained on ``data`` (no group selection) if needed."""
    registry = LocalRegistry(root)
    if any("production" in v.aliases for v in registry.versions()):
        return registry.root
    print(f"training the Food Delivery model into {root} ...", file=sys.stderr)
    config = TrainConfig(select_groups=False)
    result = run_training(data, work / "run", config, registry)
    registry.set_alias("production", result.version, reason="serve bench")
    return registry.root


def _shifted(data: Path, live: Path) -> Path:
    """The data directory with every time moved so the log ends now (fresh features)."""
    events = datadir.scan_events(data).collect()
    delta = datetime.now(UTC) - events.get_column("event_time").max()  # type: ignore[operator]
    orders = datadir.read_orders(data)
    times = [c for c in orders.columns if orders.schema[c] == events.schema["event_time"]]
    live.mkdir(parents=True)
    datadir.write_events(live, events.with_columns(pl.col("event_time") + delta))
    datadir.write_orders(live, orders.with_columns(pl.col(c) + delta for c in times))
    summary = json.loads((data / datadir.SUMMARY_FILE).read_text())
    datadir.write_summary(live, summary)
    return live


def _bodies(live: Path, work: Path) -> dict[str, Path]:
    orders = datadir.read_orders(live).sort("created_at").tail(2000)
    rows = [order_body(row) for row in orders.iter_rows(named=True)]
    single = work / "orders.jsonl"
    single.write_text("".join(json.dumps(r) + "\n" for r in rows))
    batch = work / "batches.jsonl"
    chunks = [rows[i : i + 100] for i in range(0, len(rows) - 99, 100)]
    batch.write_text("".join(json.dumps({"orders": c}) + "\n" for c in chunks))
    return {"single": single, "batch": batch}


def _run_phases(
    args: argparse.Namespace, registry: Path, url: str, bodies: dict[str, Path], work: Path
) -> dict[str, Any]:
    env = service_env(registry, url, args.cache, work / "predictions")
    with ServeProcess(env, workers=2, log_path=work / "serve.log") as service:
        service.wait_ready(timeout_s=300)
        print("waiting for the compiled trees ...", file=sys.stderr)
        wait_for(lambda: _compiled(service.url), 900, "compiled trees")
        with _bare_path(registry, args.cache, url, work) as bare:
            bare.wait_ready(timeout_s=300)
            print("warming up (10 s each, not measured) ...", file=sys.stderr)
            for target in (service.url, bare.url):
                _wrk(target, bodies["single"], "/v1/eta", conns=16, seconds=10)
            out = _compared(args, bodies, service.url, bare.url)
        out["overload wrk -t2 -c640"] = _repeat(
            args.repeats,
            service.url,
            lambda: _wrk(
                service.url, bodies["single"], "/v1/eta", conns=640, seconds=args.seconds, threads=2
            ),
        )
        out["_log"] = service.log()
    return out


def _bare_path(registry: Path, cache: Path, url: str, work: Path) -> ServeProcess:
    """The bare path (``bench/bare_path.py``) under uvicorn with 2 workers, to start."""
    env = {"BARE_REGISTRY": str(registry), "BARE_CACHE": str(cache), "BARE_REDIS": url}
    return uvicorn_app("bare_path:create", env, work / "bare.log")


def uvicorn_app(factory: str, env: dict[str, str], log: Path, workers: int = 2) -> ServeProcess:
    """The app of ``factory`` (a module of ``bench/``) under uvicorn with ``workers`` worker
    processes (httptools, uvloop), to start."""
    path = os.pathsep.join([str(ROOT / "bench"), str(ROOT / "src")])
    app = ServeProcess({**env, "PYTHONPATH": path}, log_path=log)
    app.command = [
        *(sys.executable, "-m", "uvicorn", "--factory", factory, "--workers", str(workers)),
        *("--host", HOST, "--port", str(app.port), "--loop", "uvloop", "--http", "httptools"),
        *("--no-access-log", "--log-level", "warning"),
    ]
    return app


def _compared(
    args: argparse.Namespace, bodies: dict[str, Path], service: str, bare: str
) -> dict[str, Any]:
    """The phases both run, each run of the service next to one of the bare path."""
    single, batch, seconds = bodies["single"], bodies["batch"], args.seconds
    phases: dict[str, Callable[[str], dict[str, float]]] = {
        "wrk -c16": lambda u: _wrk(u, single, "/v1/eta", conns=16, seconds=seconds),
        "wrk -c64": lambda u: _wrk(u, single, "/v1/eta", conns=64, seconds=seconds),
        f"open loop {args.rate}/s": lambda u: _open_loop(u, single, args.rate, seconds),
        "batch 100, wrk -c1": lambda u: _wrk(u, batch, "/v1/eta/batch", conns=1, seconds=seconds),
    }
    out: dict[str, Any] = {}
    for name, run in phases.items():
        ours, theirs = [], []
        for repeat in range(args.repeats):  # the order alternates: neither always goes first
            if repeat % 2:
                theirs.append(_bare_run(run, bare))
            ours.append(_counted(service, lambda r=run: r(service)))  # type: ignore[misc]
            if not repeat % 2:
                theirs.append(_bare_run(run, bare))
        out[name] = _medians(ours)
        out[f"bare path: {name}"] = _medians(theirs)
    return out


def _compiled(url: str) -> bool:
    return bool(re.search(r'arrive_model_info\{[^}]*backend="lleaves"[^}]*\} 1\.0', _metrics(url)))


def _metrics(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def _answers(url: str) -> dict[str, float]:
    found: dict[str, float] = {}
    pattern = r'arrive_predictions_total\{fallback="([^"]+)",variant="[^"]+"\} ([0-9.e+]+)'
    for reason, value in re.findall(pattern, _metrics(url)):
        found[reason] = found.get(reason, 0.0) + float(value)
    return found


def _bare_run(run: Callable[[str], dict[str, float]], bare: str) -> dict[str, float]:
    result = run(bare)
    print(f"  bare path: {result}", file=sys.stderr)
    return result


def _repeat(repeats: int, url: str, run: Callable[[], dict[str, float]]) -> dict[str, Any]:
    return _medians([_counted(url, run) for _ in range(repeats)])


def _counted(url: str, run: Callable[[], dict[str, float]]) -> dict[str, Any]:
    """``run()`` and the shares of the service's answers during it (from /metrics)."""
    before = _answers(url)
    result: dict[str, Any] = run()
    after = _answers(url)
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    total = sum(delta.values()) or 1.0
    result["model_share"] = delta.get("none", 0.0) / total
    result["overload_share"] = delta.get("overload", 0.0) / total
    result["fallbacks"] = ", ".join(
        f"{k} {v / total:.1%}" for k, v in sorted(delta.items()) if k != "none" and v
    )
    print(f"  {result}", file=sys.stderr)
    return result


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    numbers = [k for k in runs[0] if k != "fallbacks"]
    medians = {k: statistics.median(r[k] for r in runs) for k in numbers}
    return medians | {"fallbacks": runs[-1].get("fallbacks", ""), "runs": runs}


def _wrk(
    url: str, bodies: Path, path: str, *, conns: int, seconds: int, threads: int = 1
) -> dict[str, float]:
    command = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    env = {**os.environ, "BODIES": str(bodies), "PATH_": path}
    text = subprocess.run(
        [*command, "-s", str(LUA), url], env=env, capture_output=True, text=True, check=True
    ).stdout
    latency = dict(re.findall(r"^\s+(50|90|99)(?:\.0+)?%\s+([0-9.]+\w+)", text, re.MULTILINE))
    timeouts = re.search(r"timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "req_s": float(re.search(r"Requests/sec:\s+([0-9.]+)", text)[1]),  # type: ignore[index]
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "timeouts": float(timeouts[1]) if timeouts else 0.0,
        "non_2xx": float(non_2xx[1]) if non_2xx else 0.0,
    }


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNIT[unit]


def _open_loop(url: str, bodies: Path, rate: int, seconds: int) -> dict[str, float]:
    """Requests sent on a fixed schedule over a pool of keep-alive connections.

    The generator runs on uvloop with its garbage collector off, so that its own
    pauses do not count as the service's latency.
    """
    gc.collect()
    gc.disable()
    try:
        return uvloop.run(_open_loop_async(url, bodies.read_text().splitlines(), rate, seconds))
    finally:
        gc.enable()


async def _open_loop_async(
    url: str, bodies: list[str], rate: int, seconds: int
) -> dict[str, float]:
    host, port = url.removeprefix("http://").split(":")
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await asyncio.open_connection(host, int(port)))
    requests = [_request(host, b.encode()) for b in bodies]
    latencies: list[float] = []
    errors = 0

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        reader, writer = await pool.get()
        try:
            writer.write(requests[i % len(requests)])
            status = await _response(reader)
            errors += status != 200
            latencies.append(time.perf_counter() - scheduled)
        finally:
            pool.put_nowait((reader, writer))

    start = time.perf_counter() + 0.05
    running: set[asyncio.Task[None]] = set()
    for i in range(rate * seconds):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, scheduled))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    latencies.sort()
    return {
        "req_s": len(latencies) / (time.perf_counter() - start),
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "timeouts": 0.0,
        "non_2xx": float(errors),
    }


def _request(host: str, body: bytes) -> bytes:
    head = (
        f"POST /v1/eta HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])  # type: ignore[index]
    await reader.readexactly(length)
    return status


def _print(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d} {os.cpu_count()} cores, {args.repeats} repeats x "
        f"{args.seconds} s, medians (2 workers, redis-server and load generator on the box)\n"
    )
    print(
        "| phase | req/s | p50 ms | p99 ms | model answers | overload | timeouts | non-2xx "
        "| fallbacks (last run) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        if name.startswith("_"):
            continue
        shares = (
            f"{r['model_share']:.1%} | {r['overload_share']:.1%}" if "model_share" in r else "- | -"
        )
        print(
            f"| {name} | {r['req_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {shares} | "
            f"{r['timeouts']:.0f} | {r['non_2xx']:.0f} | {r['fallbacks'] or '-'} |"
        )


if __name__ == "__main__":
    main()
