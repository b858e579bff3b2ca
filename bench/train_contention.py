"""`arrive train` beside other CPU-bound work: alone, beside a busy process, two at once.

Usage: python bench/train_contention.py [--csv PATH] [--repeats 3] [--env NAME=VALUE] [--check]

Imports the demo data once into a temporary directory (the Food Delivery CSV:
``--csv``, else ``ARRIVE_DEMO_DATA``, else ``../shared/data``; a simulated week
of about as many orders when it is absent), then, in each
repeat, times ``arrive train`` in fresh processes in three scenarios, one after
the other:

* ``alone``: one training on an otherwise idle (as far as this script goes) machine;
* ``beside_busy``: one training beside a plain Python busy loop;
* ``two_at_once``: two trainings started together (each one's own time is kept).

Prints JSON: every run's seconds, each scenario's median, and its ratio to the
median of ``alone`` measured in the same run. The targets: beside the busy process
at most 2x alone, two at once at most 2.5x each; ``--check`` exits 1 when a median
misses them.

The children get this process's environment without the variables Arrive itself
set here (each ``arrive`` process decides its own), plus every ``--env``; for
instance ``--env OMP_WAIT_POLICY=ACTIVE`` shows what spinning OpenMP threads cost,
and ``--env PYTHONPATH=OTHER/src`` measures another checkout of Arrive.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from arrive import cores

DEFAULT_CSV = Path(
    os.environ.get("ARRIVE_DEMO_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "food_delivery.csv.gz"
)
ARRIVE = (sys.executable, "-m", "arrive.cli")
BUSY = (sys.executable, "-c", "while True: pass")
TARGETS = {"beside_busy": 2.0, "two_at_once": 2.5}
SIMULATED_ORDERS_PER_DAY = 6500  # a week of it is about the size of the CSV (45,593 rows)


def main() -> None:
    args = _parser().parse_args()
    env = child_env(os.environ, _pairs(args.env))
    with tempfile.TemporaryDirectory(prefix="train-contention-") as tmp:
        work = Path(tmp)
        source = prepare_data(work / "data", args.csv, env)
        runs = run_scenarios(work / "data", work, env, args.repeats)
    report = summarise(runs)
    report = {"source": source, "env": _pairs(args.env), **_machine(env), **report}
    print(json.dumps(report, indent=2))
    if args.check and not all(report["meets_targets"].values()):
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
    )
    parser.add_argument(
        "--csv", type=Path, default=DEFAULT_CSV, help="Food Delivery CSV (default: %(default)s)."
    )
    parser.add_argument(
        "--repeats", type=_positive, default=3, help="Runs of each scenario (default: 3)."
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="An environment variable of every training (repeatable).",
    )
    parser.add_argument(
        "--check", action="store_true", help="Exit 1 when a scenario misses its target."
    )
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _pairs(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env: expected NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def child_env(environ: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without what Arrive set in this process, plus ``extra``."""
    return {**cores.without_ours(environ), **extra}


def prepare_data(out: Path, csv: Path, env: Mapping[str, str]) -> str:
    """Import ``csv`` into ``out`` (a simulated week when it is absent); its description."""
    if csv.is_file():
        subprocess.run([*ARRIVE, "import", "food-delivery", str(csv), "--out", str(out), "-q"],
                       env=env, check=True)  # fmt: skip
        return f"food-delivery CSV ({csv.name})"
    command = [*ARRIVE, "simulate", "--out", str(out), "--quiet"]
    command += ["--orders-per-day", str(SIMULATED_ORDERS_PER_DAY)]
    subprocess.run(command, env=env, check=True)
    return f"simulated week, {SIMULATED_ORDERS_PER_DAY} orders a day"


def run_scenarios(
    data: Path, work: Path, env: Mapping[str, str], repeats: int
) -> dict[str, list[float]]:
    """Seconds of every training, by scenario; scenarios interleaved in each repeat."""
    runs: dict[str, list[float]] = {"alone": [], "beside_busy": [], "two_at_once": []}
    for i in range(repeats):
        runs["alone"] += trainings(data, work / f"alone-{i}", env, 1)
        busy = subprocess.Popen(BUSY, env=env)
        try:
            runs["beside_busy"] += trainings(data, work / f"busy-{i}", env, 1)
        finally:
            busy.kill()
            busy.wait()
        runs["two_at_once"] += trainings(data, work / f"two-{i}", env, 2)
        print(f"repeat {i + 1}/{repeats}: {_rounded(runs)}", file=sys.stderr)
    return runs


def trainings(data: Path, work: Path, env: Mapping[str, str], count: int) -> list[float]:
    """Start ``count`` trainings together; each one's seconds from start to its exit."""
    seconds = [0.0] * count
    started = time.perf_counter()

    def wait(k: int, process: subprocess.Popen[bytes]) -> None:
        process.wait()
        seconds[k] = time.perf_counter() - started

    processes = [_train(data, work / f"run-{k}", env) for k in range(count)]
    waiters = [threading.Thread(target=wait, args=(k, p)) for k, p in enumerate(processes)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    failed = [p.args for p in processes if p.returncode != 0]
    if failed:
        raise SystemExit(f"a training failed: {failed[0]}")
    return seconds


def _train(data: Path, run: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    command = [*ARRIVE, "train", str(data), "--out", str(run), "--no-register", "--quiet"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def summarise(runs: Mapping[str, list[float]]) -> dict[str, object]:
    """Medians, ratios to ``alone`` and whether each target is met."""
    medians = {name: statistics.median(seconds) for name, seconds in runs.items()}
    ratios = {name: medians[name] / medians["alone"] for name in medians}
    return {
        "runs_s": _rounded(runs),
        "median_s": {name: round(value, 2) for name, value in medians.items()},
        "ratio_to_alone": {name: round(value, 2) for name, value in ratios.items()},
        "targets": TARGETS,
        "meets_targets": {name: ratios[name] <= limit for name, limit in TARGETS.items()},
    }


def _rounded(runs: Mapping[str, list[float]]) -> dict[str, list[float]]:
    return {name: [round(s, 2) for s in seconds] for name, seconds in runs.items()}


def _machine(env: Mapping[str, str]) -> dict[str, object]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"{cores.available_cores()} usable by this process",
        "threads_per_training": cores.threads(env),
        "python": platform.python_version(),
    }


if __name__ == "__main__":
    main()
