"""The client's figures (issue 24), in one run on one machine:

1. ``arrive score --registry``: orders/s of local scoring of the Food Delivery data
   directory (offline features of every order + both quantiles from the lleaves-compiled
   trees), with the features and the trees timed apart.
2. ``bulk_predict`` of 200,000 orders (Food Delivery's orders, repeated with new ids)
   against ``arrive serve --workers 2`` on the same machine, vs the service's batch
   throughput measured by wrk in the same run (the same batches of ``--batch`` orders):
   with one request in flight per process (``--in-flight 1``, as many wrk connections
   as processes) and with ``--in-flight`` requests per process (wrk with as many
   connections as the client keeps requests on the wire), alternating.
3. Client overhead per single ``predict``: the client process's CPU time per call of
   ``EtaClient.predict(dict)`` vs a raw ``httpx.Client.post`` of pre-encoded bytes, in
   alternating blocks against the same service (CPU time, not wall time: the server's
   share and the host's noise are not the client's).

Usage: python bench/client_bench.py [--registry DIR] [--orders 200000] [--seconds 10]
       [--in-flight 2] [--only bulk]
Trains a Food Delivery model into ``--registry`` first when it has none (minutes).
"""

from __future__ import annotations

import argparse
import json
import statistics
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
    sys.path.insert(0, str(BENCH))
    from serve_bench import _registry

    from arrive.ingest.importers import import_into, load_mapping

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=ROOT / "../shared/data/food_delivery.csv.gz")
    parser.add_argument("--registry", type=Path, default=ROOT / ".arrive" / "bench-registry")
    parser.add_argument("--cache", type=Path, default=ROOT / ".arrive" / "compiled")
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=2000, help="single predicts per block")
    parser.add_argument("--in-flight", type=int, default=2, help="requests per bulk process")
    parser.add_argument("--only", choices=["bulk"], help="only the bulk figure")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="arrive-client-bench-") as tmp:
        work = Path(tmp)
        data = import_into(work / "data", args.csv, load_mapping("food-delivery"))
        registry = _registry(args.registry, data, work)
        if args.only is None:
            out["score --registry"] = _score(registry, args.cache, data)
        rows = _rows(data, args.orders)
        out |= _served(args, registry, rows, work)
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
    from arrive import datadir
    from arrive.testing.servers.eta_service import order_body

    orders = datadir.read_orders(data).sort("created_at")
    base = [order_body(row) for row in orders.iter_rows(named=True)]
    rows = []
    for i in range(n):
        row = dict(base[i % len(base)])
        row["order_id"] = f"{row['order_id']}-{i // len(base)}"
        rows.append(row)
    return rows


def _served(
    args: argparse.Namespace, registry: Path, rows: list[dict[str, Any]], work: Path
) -> dict[str, Any]:
    env = {
        "ARRIVE_REGISTRY_DIR": str(registry),
        "ARRIVE_COMPILE_CACHE_DIR": str(args.cache),
        "ARRIVE_PREDICTION_LOG_DIR": str(work / "predictions"),
        "ARRIVE_MAX_BATCH": str(max(args.batch, 100)),
        "ARRIVE_LOG_LEVEL": "warning",
    }
    batches = work / "batches.jsonl"
    chunks = [rows[i : i + args.batch] for i in range(0, 20 * args.batch, args.batch)]
    batches.write_text("".join(json.dumps({"orders": c}) + "\n" for c in chunks))
    from serve_bench import _compiled, _wrk

    from arrive.testing.servers.eta_service import ServeProcess, wait_for

    out: dict[str, Any] = {}
    with ServeProcess(env, workers=2, log_path=work / "serve.log") as service:
        service.wait_ready(timeout_s=300)
        wait_for(lambda: _compiled(service.url), 900, "compiled trees")
        _wrk(service.url, batches, "/v1/eta/batch", conns=args.processes, seconds=3)  # warm-up
        for in_flight in sorted({1, args.in_flight}):
            out[f"in_flight {in_flight}"] = _bulk_vs_wrk(
                service.url, batches, rows, args, in_flight
            )
        if args.only is None:
            out["overhead per predict"] = _overhead(service.url, rows, args.calls)
    return out


def _bulk_vs_wrk(
    url: str, batches: Path, rows: list[dict[str, Any]], args: argparse.Namespace, in_flight: int
) -> dict[str, Any]:
    """wrk with as many connections as the client keeps requests on the wire, then
    bulk_predict, twice, alternating (so neither always runs first)."""
    from serve_bench import _wrk

    conns = args.processes * in_flight
    wrk_runs, bulk_runs = [], []
    for _ in range(2):
        result = _wrk(url, batches, "/v1/eta/batch", conns=conns, seconds=args.seconds)
        wrk_runs.append(result["req_s"] * args.batch)
        bulk_runs.append(_bulk(url, rows, args, in_flight))
    out: dict[str, Any] = {"wrk connections": conns}
    out["wrk batch orders/s"] = wrk_runs
    out["bulk_predict orders/s"] = bulk_runs
    out["bulk / wrk (median)"] = statistics.median(bulk_runs) / statistics.median(wrk_runs)
    return out


def _bulk(url: str, rows: list[dict[str, Any]], args: argparse.Namespace, in_flight: int) -> float:
    with EtaClient(url) as client:
        started = time.perf_counter()
        result = client.bulk_predict(
            rows,
            processes=args.processes,
            batch_size=args.batch,
            in_flight=in_flight,
            progress=False,
        )
        elapsed = time.perf_counter() - started
    if result.failed:
        raise SystemExit(f"bulk_predict: {result.failed} rows failed")
    print(
        f"  bulk_predict in_flight {in_flight}: {len(rows) / elapsed:,.0f} orders/s "
        f"({elapsed:.1f} s)",
        file=sys.stderr,
    )
    return len(rows) / elapsed


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
