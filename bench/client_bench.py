"""The client's figures (issue 24), in one run on one machine:

1. ``arrive score --registry``: orders/s of local scoring of the Food Delivery data
   directory (offline features of every order + both quantiles from the lleaves-compiled
   trees), with the features and the trees timed apart.
2. ``bulk_predict`` of 200,000 orders (Food Delivery's latest 2,000 orders, repeated
   with new ids) against ``arrive serve --workers 2`` on the same machine, its model
   answering from live features (a redis-server of the bench's own, filled by a replay
   of the event log moved to end now, as in ``serve_bench.py``), vs the service's batch
   throughput measured by wrk in the same run (the same batches of ``--batch`` orders),
   for each set-up of ``--configs`` (processes x requests in flight a process; wrk with
   as many connections as the client keeps requests on the wire), alternating wrk and
   bulk ``--repeats`` times. Each bulk run is a child process (on this code, and on the
   code of ``--before-src`` when given, in alternating order) that reports its
   orders/s and the CPU time per order of the calling process and of its workers.
3. Client overhead per single ``predict``: the client process's CPU time per call of
   ``EtaClient.predict(dict)`` vs a raw ``httpx.Client.post`` of pre-encoded bytes, in
   alternating blocks against the same service (CPU time, not wall time: the server's
   share and the host's noise are not the client's).

Usage: python bench/client_bench.py [--registry DIR] [--orders 200000] [--seconds 10]
       [--configs 2x1,1x2] [--repeats 3] [--before-src OTHER/src] [--only bulk]
Trains a Food Delivery model into ``--registry`` first when it has none (minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from arrive.client import EtaClient

# the workers of bulk_predict are spawned: each imports this module again, so the heavy
# imports (training, the importers, the offline scorer) wait for the functions that use them
BENCH = Path(__file__).resolve().parent

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--bulk-child":
        _bulk_child(*sys.argv[2:])
        return
    sys.path.insert(0, str(BENCH))
    import serve_bench

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=ROOT / "../shared/data/food_delivery.csv.gz")
    parser.add_argument("--registry", type=Path, default=ROOT / ".arrive" / "bench-registry")
    parser.add_argument("--cache", type=Path, default=ROOT / ".arrive" / "compiled")
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=2000, help="single predicts per block")
    parser.add_argument(
        "--configs",
        default="2x1,1x2",
        help="bulk set-ups to measure, PROCESSESxIN_FLIGHT, comma-separated",
    )
    parser.add_argument("--repeats", type=int, default=3, help="wrk and bulk runs per set-up")
    parser.add_argument(
        "--before-src", type=Path, help="a src directory of other code, measured alike"
    )
    parser.add_argument("--only", choices=["bulk"], help="only the bulk figure")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="arrive-client-bench-") as tmp:
        work = Path(tmp)
        with serve_bench.filled_market(args.csv, args.registry, work) as (registry, live, url):
            if args.only is None:
                out["score --registry"] = _score(registry, args.cache, work / "data")
            rows = _rows(live, args.orders)
            out |= _served(args, registry, rows, work, url)
    print(json.dumps(out, indent=2))


def _score(registry: Path, cache: Path, data: Path) -> dict[str, float]:
    from arrive.serving.offline import load_model, order_features, score_frame

    print("compiling the trees (cached after the first run) ...", file=sys.stderr)
    model = load_model(registry, "production", "lleaves", cache)
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        features = order_features(data, model.features)
        built = time.perf_counter()
        answers = score_frame(model, features, threads=2)
        done = time.perf_counter()
        runs.append((len(answers), built - started, done - built, done - started))
    n = runs[0][0]
    total = statistics.median(r[3] for r in runs)
    return {
        "orders": n,
        "features_s": statistics.median(r[1] for r in runs),
        "trees_s": statistics.median(r[2] for r in runs),
        "total_s": total,
        "orders_per_s": n / total,
        "trees_orders_per_s": n / statistics.median(r[2] for r in runs),
    }


def _rows(data: Path, n: int) -> list[dict[str, Any]]:
    """``n`` orders: the latest 2,000 of ``data`` (fresh features), repeated with new ids."""
    from arrive import datadir
    from arrive.testing.servers.eta_service import order_body

    orders = datadir.read_orders(data).sort("created_at").tail(2000)
    base = [order_body(row) for row in orders.iter_rows(named=True)]
    rows = []
    for i in range(n):
        row = dict(base[i % len(base)])
        row["order_id"] = f"{row['order_id']}-{i // len(base)}"
        rows.append(row)
    return rows


def _served(
    args: argparse.Namespace, registry: Path, rows: list[dict[str, Any]], work: Path, store: str
) -> dict[str, Any]:
    from serve_bench import service_env

    env = service_env(registry, store, args.cache, work / "predictions")
    env["ARRIVE_MAX_BATCH"] = str(max(args.batch, 100))
    batches = work / "batches.jsonl"
    chunks = [rows[i : i + args.batch] for i in range(0, 20 * args.batch, args.batch)]
    batches.write_text("".join(json.dumps({"orders": c}) + "\n" for c in chunks))
    rows_file = work / "rows.pickle"
    rows_file.write_bytes(pickle.dumps(rows))
    from serve_bench import _compiled, _wrk

    from arrive.testing.servers.eta_service import ServeProcess, wait_for

    out: dict[str, Any] = {}
    with ServeProcess(env, workers=2, log_path=work / "serve.log") as service:
        service.wait_ready(timeout_s=300)
        wait_for(lambda: _compiled(service.url), 900, "compiled trees")
        _wrk(service.url, batches, "/v1/eta/batch", conns=2, seconds=3)  # warm-up
        for config in args.configs.split(","):
            processes, in_flight = (int(n) for n in config.split("x"))
            out[f"processes {processes}, in_flight {in_flight}"] = _bulk_vs_wrk(
                service.url, batches, rows_file, args, processes, in_flight
            )
        if args.only is None:
            out["overhead per predict"] = _overhead(service.url, rows, args.calls)
    return out


def _bulk_vs_wrk(
    url: str,
    batches: Path,
    rows: Path,
    args: argparse.Namespace,
    processes: int,
    in_flight: int,
) -> dict[str, Any]:
    """wrk with as many connections as the client keeps requests on the wire, then
    bulk_predict (this code, then the code of ``--before-src`` if given), ``--repeats``
    times, alternating (so that neither always runs first)."""
    from serve_bench import _wrk

    conns = processes * in_flight
    codes = {"bulk_predict": ROOT / "src"}
    if args.before_src is not None:
        codes["bulk_predict before"] = args.before_src
    runs: dict[str, list[dict[str, float]]] = {"wrk": []} | {name: [] for name in codes}
    for repeat in range(args.repeats):
        result = _wrk(url, batches, "/v1/eta/batch", conns=conns, seconds=args.seconds)
        runs["wrk"].append({"orders_per_s": result["req_s"] * args.batch})
        order = list(codes.items())
        for name, src in order if repeat % 2 == 0 else order[::-1]:
            runs[name].append(_bulk(url, rows, src, args.batch, processes, in_flight))
            print(f"  {name} {processes}x{in_flight}: {runs[name][-1]}", file=sys.stderr)
    out: dict[str, Any] = {"wrk connections": conns, "runs": runs}
    wrk = statistics.median(r["orders_per_s"] for r in runs["wrk"])
    out["wrk batch orders/s (median)"] = wrk
    for name in codes:
        mine = runs[name]
        rate = statistics.median(r["orders_per_s"] for r in mine)
        out[f"{name} orders/s (median)"] = rate
        out[f"{name} / wrk (medians)"] = rate / wrk
        for key in ("caller_cpu_us", "workers_cpu_us"):
            out[f"{name} {key} per order (median)"] = statistics.median(r[key] for r in mine)
    return out


def _bulk(
    url: str, rows: Path, src: Path, batch: int, processes: int, in_flight: int
) -> dict[str, float]:
    """One bulk run in a child process on the code of ``src``: orders/s (wall time of the
    call, the workers' start included), and the CPU time of the calling process and of
    its worker processes, per order."""
    command = [sys.executable, str(Path(__file__).resolve()), "--bulk-child", url, str(rows)]
    command += [str(batch), str(processes), str(in_flight)]
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    text = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(text.strip().splitlines()[-1])


def _bulk_child(url: str, rows_file: str, batch: str, processes: str, in_flight: str) -> None:
    rows = pickle.loads(Path(rows_file).read_bytes())
    with EtaClient(url) as client:
        started, cpu = time.perf_counter(), time.process_time()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = client.bulk_predict(
            rows,
            processes=int(processes),
            batch_size=int(batch),
            in_flight=int(in_flight),
            progress=False,
        )
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.failed:
        raise SystemExit(f"bulk_predict: {result.failed} rows failed")
    workers = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    n = len(rows)
    print(
        json.dumps(
            {
                "orders_per_s": n / elapsed,
                "caller_cpu_us": cpu / n * 1e6,
                "workers_cpu_us": workers / n * 1e6,
                "model_share": float(result.frame["fallback"].is_null().mean()),
            }
        )
    )


def _overhead(url: str, rows: list[dict[str, Any]], calls: int) -> dict[str, Any]:
    bodies = [json.dumps(r).encode() for r in rows[:calls]]
    ours, raw = [], []
    with EtaClient(url) as client, httpx.Client(base_url=url) as plain:
        headers = {"content-type": "application/json"}
        for block in range(6):
            if block % 2:
                started = time.process_time()
                for row in rows[:calls]:
                    client.predict(row)
                ours.append((time.process_time() - started) / calls * 1e6)
            else:
                started = time.process_time()
                for body in bodies:
                    plain.post("/v1/eta", content=body, headers=headers).json()
                raw.append((time.process_time() - started) / calls * 1e6)
    return {
        "client_cpu_us": statistics.median(ours),
        "raw_httpx_cpu_us": statistics.median(raw),
        "overhead_us": statistics.median(ours) - statistics.median(raw),
        "blocks": {"client": ours, "raw": raw},
    }


if __name__ == "__main__":
    main()
