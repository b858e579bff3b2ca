"""What ``arrive monitor`` beside the service costs it: serve_bench's load, blocks with and
without a monitor following the service's prediction log, alternating in one run.

Usage: python bench/monitor_overhead.py [--registry DIR] [--blocks 3] [--seconds 10]

1. The setup of ``bench/serve_bench.py``: the Food Delivery production model of
   ``--registry`` (trained into it when it has none), its own redis-server filled with the
   event log shifted to end now, ``arrive serve --workers 2`` on the compiled trees, the
   last 2,000 orders as requests, 10 s of unmeasured warm-up. The service's prediction
   log is published every 5 s (``ARRIVE_PREDICTION_LOG_ROTATE_S``) in both arms, so the
   monitor has files to read while it is measured.
2. ``--blocks`` times, the two arms in alternating order (neither always goes first):
   * without: ``wrk -t1 -c64`` for ``--seconds``, then the open-loop generator at
     ``--rate`` req/s for ``--seconds`` (latency from the scheduled send time);
   * with: the same, while ``arrive monitor`` follows the log (``--log-dir``), its
     outcomes from a Redis Stream of the same redis-server, drift on (``--registry``),
     skew on (``--events-dir``, the default 15-minute interval), ``/metrics`` served,
     60 s windows closed 20 s after their end on the wall clock (``--idle-lag-s 0
     --horizon-s 20``: no outcomes arrive, so predictions expire, but every window's
     PSI is computed and written).
     It is started before the block and stopped after it, keeping its checkpoint, so
     each start reads only the files published since; the block starts once its
     ``/healthz`` answers and 2 s have passed (its start-up is not measured).
3. Prints the medians of each arm and every run, with the CPU seconds the monitor used
   while its block was measured (from ``/proc``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import serve_bench as sb

from arrive.testing.servers.eta_service import ServeProcess, wait_for
from arrive.testing.servers.ports import answers_ok, free_port
from arrive.testing.servers.processes import terminate

SETTLE_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=sb.DEFAULT_CSV, help="Food Delivery CSV")
    parser.add_argument(
        "--registry", type=Path, default=sb.ROOT / ".arrive" / "bench-registry", help="registry"
    )
    parser.add_argument(
        "--cache", type=Path, default=sb.ROOT / ".arrive" / "bench-compiled", help="trees cache"
    )
    parser.add_argument("--blocks", type=int, default=3, help="blocks of each arm")
    parser.add_argument("--seconds", type=int, default=10, help="length of each phase")
    parser.add_argument("--rate", type=int, default=1000, help="open loop: requests per second")
    args = parser.parse_args()
    sb.require_wrk(parser)
    with tempfile.TemporaryDirectory(prefix="arrive-monitor-overhead-") as tmp:
        work = Path(tmp)
        with sb.filled_market(args.csv, args.registry, work) as (registry, live, url):
            bodies = sb._bodies(live, work)
            runs = _blocks(args, registry, url, bodies["single"], live, work)
    _print(runs, args)


def _blocks(
    args: argparse.Namespace, registry: Path, url: str, single: Path, live: Path, work: Path
) -> dict[str, list[dict[str, float]]]:
    env = {
        **sb.service_env(registry, url, args.cache, work / "predictions"),
        "ARRIVE_PREDICTION_LOG_ROTATE_S": "5",
    }
    monitor = [
        *(sys.executable, "-m", "arrive.cli", "monitor", "--quiet"),
        *("--log-dir", str(work / "predictions"), "--source", f"{url}?stream=outcomes"),
        *("--out", str(work / "quality"), "--checkpoint", str(work / "checkpoint.msgpack")),
        *("--registry", str(registry), "--events-dir", str(live), "--window-s", "60"),
        *("--idle-lag-s", "0", "--horizon-s", "20"),  # no outcomes: windows still close
    ]
    runs: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    with ServeProcess(env, workers=2, log_path=work / "serve.log") as service:
        service.wait_ready(timeout_s=300)
        print("waiting for the compiled trees ...", file=sys.stderr)
        wait_for(lambda: sb._compiled(service.url), 900, "compiled trees")
        sb._wrk(service.url, single, "/v1/eta", conns=16, seconds=10)  # warm-up
        for block in range(args.blocks):
            arms = ("without", "with") if block % 2 == 0 else ("with", "without")
            for arm in arms:
                if arm == "with":
                    result = _with_monitor(monitor, work, lambda: _phases(args, service, single))
                else:
                    result = _phases(args, service, single)
                print(f"  block {block + 1}, {arm} the monitor: {result}", file=sys.stderr)
                runs[arm].append(result)
    return runs


def _phases(args: argparse.Namespace, service: ServeProcess, single: Path) -> dict[str, float]:
    wrk = sb._wrk(service.url, single, "/v1/eta", conns=64, seconds=args.seconds)
    loop = sb._open_loop(service.url, single, args.rate, args.seconds)
    return {
        "wrk_req_s": wrk["req_s"],
        "wrk_p99_ms": wrk["p99_ms"],
        "loop_p50_ms": loop["p50_ms"],
        "loop_p99_ms": loop["p99_ms"],
        "errors": wrk["timeouts"] + wrk["non_2xx"] + loop["non_2xx"],
    }


def _with_monitor(command: list[str], work: Path, run: Any) -> dict[str, float]:
    port = free_port()
    with open(work / "monitor.log", "ab") as out:
        process = subprocess.Popen([*command, "--metrics-port", str(port)], stdout=out, stderr=out)
    try:
        wait_for(lambda: answers_ok(f"http://127.0.0.1:{port}/healthz"), 60, "the monitor")
        time.sleep(SETTLE_S)
        before = _cpu_s(process.pid)
        result: dict[str, float] = run()
        result["monitor_cpu_s"] = _cpu_s(process.pid) - before  # while measured
        result["drift_files"] = float(len(list((work / "quality").glob("drift-*.parquet"))))
        return result
    finally:
        terminate(process)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / 100.0


def _print(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    print(f"{args.blocks} blocks of {args.seconds} s per phase, arms alternating")
    for arm, found in runs.items():
        medians = {k: statistics.median(r[k] for r in found) for k in found[0]}
        print(f"{arm} the monitor: medians {json.dumps(medians)}")
        for run in found:
            print(f"  {json.dumps(run)}")


if __name__ == "__main__":
    main()
