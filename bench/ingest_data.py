"""Wall time of `arrive import food-delivery` and of the default `arrive simulate`.

Usage: python bench/ingest_data.py [--csv PATH] [--runs 3]

Each command runs ``--runs`` times in a fresh subprocess (start-up included, as
a user sees it); the median and every run are printed as JSON.
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
import time
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "food_delivery.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    arrive = [sys.executable, "-m", "arrive.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "import food-delivery": [*arrive, "import", "food-delivery", str(args.csv)],
            "simulate (1 week, default city)": [*arrive, "simulate"],
        }
        results = {name: _time(cmd, Path(tmp), args.runs) for name, cmd in commands.items()}
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(json.dumps({"date": stamp, "machine": machine, "results": results}, indent=2))


def _time(command: list[str], tmp: Path, runs: int) -> dict[str, object]:
    seconds = []
    for i in range(runs):
        out = tmp / f"out-{len(command)}-{i}"
        started = time.perf_counter()
        subprocess.run([*command, "--out", str(out), "--quiet"], check=True)
        seconds.append(time.perf_counter() - started)
    return {
        "median_s": round(statistics.median(seconds), 2),
        "runs_s": [round(s, 2) for s in seconds],
    }


if __name__ == "__main__":
    main()
