"""Train + evaluate + report on the Food Delivery data: quality and wall time.

Usage: python bench/train_food_delivery.py [--csv PATH] [--runs 3]

Imports the CSV once, then for each split (time, random) runs the whole
training pipeline ``--runs`` times and prints the median wall time with the
metrics of the run (identical across runs: training is deterministic).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from arrive import cores
from arrive.ingest.importers import import_into, load_mapping
from arrive.training.pipeline import TrainConfig, run_training

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "food_delivery.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = import_into(Path(tmp) / "data", args.csv, load_mapping("food-delivery"))
        rows = [_bench(data, Path(tmp), split, args.runs) for split in ("time", "random")]
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {_cores()} usable cores",
                "results": rows,
            },
            indent=2,
        )
    )


def _bench(data: Path, tmp: Path, split: str, runs: int) -> dict[str, object]:
    seconds = []
    metrics: dict[str, object] = {}
    for i in range(runs):
        started = time.perf_counter()
        result = run_training(data, tmp / f"run-{split}-{i}", TrainConfig(split=split))  # type: ignore[arg-type]
        seconds.append(time.perf_counter() - started)
        metrics = result.metrics
    keep = (
        "mae_s",
        "heuristic_mae_s",
        "mae_improvement",
        "coverage_p50",
        "coverage_p90",
        "late_rate",
        "crossings",
        "n_train",
        "n_test",
    )
    return {
        "split": split,
        "seconds_median": round(statistics.median(seconds), 2),
        "seconds_runs": [round(s, 2) for s in seconds],
        "mae_min": round(float(metrics["mae_s"]) / 60, 3),  # type: ignore[arg-type]
        **{k: metrics[k] for k in keep},
    }


def _cores() -> int:
    return cores.available_cores()  # what the training's threads are sized to


if __name__ == "__main__":
    main()
