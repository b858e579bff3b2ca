"""``arrive score --registry``: orders/s of local scoring (offline features of every
order + P50 and P90 from the lleaves-compiled trees), this source tree vs another
(``--before-src``, e.g. ``git archive 459c12c src``), in alternating child processes of
the same run, with the answers of the two compared for equality.

Each child loads the model once, then scores the data directory ``--repeats`` times
(features, then trees on ``--threads`` threads), timing each part in wall and CPU
time; the parent alternates the two trees ``--rounds`` times and prints the medians.
The whole command (``python -m arrive.cli score``: start-up, model load and check,
features, trees, the Parquet written) is timed once per tree at the end.

Usage: PYTHONPATH=src python bench/score_bench.py --before-src /tmp/before/src \\
    [--data DIR] [--registry DIR] [--cache DIR] [--threads 2]
Without ``--data`` the Food Delivery CSV is imported first; without a production model
in ``--registry`` one is trained on it (minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent

CHILD = """
import json, sys, time
from pathlib import Path
from arrive.serving.offline import load_model, order_features, score_frame
data, registry, cache, threads, repeats, out = sys.argv[1:7]
model = load_model(Path(registry), "production", "lleaves", Path(cache))
runs = []
for _ in range(int(repeats)):
    w0, c0 = time.perf_counter(), time.process_time()
    features = order_features(Path(data), model.features)
    w1, c1 = time.perf_counter(), time.process_time()
    answers = score_frame(model, features, int(threads))
    w2, c2 = time.perf_counter(), time.process_time()
    runs.append({"orders": len(answers), "features_s": w1 - w0, "trees_s": w2 - w1,
                 "total_s": w2 - w0, "cpu_s": c2 - c0})
answers.drop("created_at").write_parquet(out)
print(json.dumps(runs))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before-src", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="a data directory (default: Food Delivery)")
    parser.add_argument("--csv", type=Path, default=ROOT / "../shared/data/food_delivery.csv.gz")
    parser.add_argument("--registry", type=Path, default=ROOT / ".arrive" / "bench-registry")
    parser.add_argument("--cache", type=Path, default=ROOT / ".arrive" / "compiled")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": args.before_src.resolve(), "after": (ROOT / "src").resolve()}
    with tempfile.TemporaryDirectory(prefix="arrive-score-bench-") as tmp:
        work = Path(tmp)
        data = args.data or _imported(args.csv, work)
        registry = _registry(args.registry, data, work)
        env = {**os.environ, "ARRIVE_THREADS": str(args.threads)}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for round_ in range(args.rounds):
            for name, src in trees.items() if round_ % 2 == 0 else reversed(trees.items()):
                out = work / f"{name}.parquet"
                command = [sys.executable, "-c", CHILD, str(data), str(registry)]
                command += [str(args.cache), str(args.threads), str(args.repeats), str(out)]
                done = subprocess.run(
                    command,
                    check=False,
                    env={**env, "PYTHONPATH": str(src)},
                    capture_output=True,
                    text=True,
                )
                if done.returncode:
                    raise SystemExit(f"{name}: {done.stderr[-2000:]}")
                runs[name] += json.loads(done.stdout.strip().splitlines()[-1])
                print(f"  {name}: {_line(runs[name][-args.repeats :])}", file=sys.stderr)
        report: dict[str, Any] = {name: _medians(r) for name, r in runs.items()}
        report["answers equal"] = _equal(work / "before.parquet", work / "after.parquet")
        report["whole command"] = {
            name: _command(src, data, registry, args, env, work) for name, src in trees.items()
        }
        report["load average (start of the report)"] = os.getloadavg()
    print(json.dumps(report, indent=2))


def _imported(csv: Path, work: Path) -> Path:
    from arrive.ingest.importers import import_into, load_mapping

    return import_into(work / "data", csv, load_mapping("food-delivery"))


def _registry(root: Path, data: Path, work: Path) -> Path:
    sys.path.insert(0, str(BENCH))
    from serve_bench import _registry as trained

    registry: Path = trained(root, data, work)
    return registry


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    n = runs[0]["orders"]
    out = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "orders"}
    return {
        "orders": n,
        **out,
        "orders_per_s": n / out["total_s"],
        "features_orders_per_s": n / out["features_s"],
        "trees_orders_per_s": n / out["trees_s"],
        "runs": len(runs),
        "total_s_each": [round(r["total_s"], 3) for r in runs],
    }


def _line(runs: list[dict[str, float]]) -> str:
    return ", ".join(
        f"{r['total_s']:.3f} s (features {r['features_s']:.3f}, trees {r['trees_s']:.3f})"
        for r in runs
    )


def _equal(before: Path, after: Path) -> bool:
    import polars as pl

    return pl.read_parquet(before).equals(pl.read_parquet(after))


def _command(
    src: Path,
    data: Path,
    registry: Path,
    args: argparse.Namespace,
    env: dict[str, str],
    work: Path,
) -> float:
    command = [sys.executable, "-m", "arrive.cli", "score", str(data), "--registry"]
    command += [str(registry), "--compile-cache", str(args.cache), "--quiet"]
    command += ["--out", str(work / "scored.parquet")]
    started = time.perf_counter()
    subprocess.run(command, env={**env, "PYTHONPATH": str(src)}, check=True, capture_output=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
