"""Per-row inference time of the served model: compiled trees against plain LightGBM.

Usage: python bench/inference_bench.py [--csv PATH | --registry DIR [--ref production]]
       [--repeats 5] [--calls 2000]

Trains the Food Delivery model (default training config) on an import of the CSV,
or opens ``--ref`` from ``--registry``. For each backend (LightGBM with one
thread, lleaves through its C entry point, tl2cgen) it prints, as medians over
``--repeats`` runs of ``--calls`` single-row calls on real feature rows:

* ``trees_us``: both quantiles' raw outputs for one encoded row;
* ``predict_us``: the whole :meth:`CompiledModel.predict` for one feature dict
  (encoding + both quantiles + calibration), what the service runs per order;
* ``batch_us_per_row``: the same for a batch of 1,000 rows, per row;
* ``compile_s``: time to compile both boosters (a cold compile unless ``--cache``
  names a directory that already holds them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from arrive.ingest.importers import import_into, load_mapping
from arrive.models.artifact import ModelBundle
from arrive.registry import InMemoryRegistry, LocalRegistry, ModelRegistry
from arrive.serving.compiled import CompiledModel
from arrive.training.dataset import load_training_set
from arrive.training.pipeline import TrainConfig, run_training

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "food_delivery.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--registry", type=Path, help="use a registered model instead")
    parser.add_argument("--ref", default="production", help="version or alias (with --registry)")
    parser.add_argument("--data", type=Path, help="data dir for feature rows (with --registry)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--cache", type=Path, help="compile cache (default: a cold temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle, rows = _model_and_rows(args, Path(tmp))
        cache = args.cache or Path(tmp) / "cache"
        results = [
            _bench(bundle, rows, backend, cache, args.repeats, args.calls)
            for backend in ("none", "lleaves", "tl2cgen")
        ]
    model = bundle.model
    trees = {str(q): b.num_trees() for q, b in model.boosters_.items()}
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "model": {"features": len(model.features_), "trees": trees},
                "results": results,
            },
            indent=2,
        )
    )
    print("\n| backend | compile s | trees µs/row (both q) | predict µs/row | batch 1k µs/row |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['backend']} | {r['compile_s']} | {r['trees_us']} | {r['predict_us']} "
            f"| {r['batch_us_per_row']} |"
        )


def _model_and_rows(
    args: argparse.Namespace, tmp: Path
) -> tuple[ModelBundle, list[dict[str, Any]]]:
    registry: ModelRegistry
    if args.registry is not None:
        registry = LocalRegistry(args.registry)
        bundle = ModelBundle.from_files(registry.open(args.ref).files)
        data = args.data or import_into(tmp / "data", args.csv, load_mapping("food-delivery"))
    else:
        data = import_into(tmp / "data", args.csv, load_mapping("food-delivery"))
        registry = InMemoryRegistry()
        result = run_training(data, tmp / "run", TrainConfig(), registry)
        bundle = ModelBundle.from_files(registry.open(result.version or "1").files)
    frame = load_training_set(data).features.frame
    sample = np.random.default_rng(0).choice(frame.height, min(1000, frame.height), replace=False)
    rows = frame[sorted(sample.tolist())].select(bundle.model.features_).to_dicts()
    return bundle, rows


def _bench(
    bundle: ModelBundle,
    rows: list[dict[str, Any]],
    backend: Any,
    cache: Path,
    repeats: int,
    calls: int,
) -> dict[str, object]:
    compiled = CompiledModel(bundle.model, backend, cache)
    started = time.perf_counter()
    compiled.start_compiling()
    compiled.wait()
    compile_s = time.perf_counter() - started if backend != "none" else 0.0
    if compiled.error:
        return {"backend": backend, "error": compiled.error}
    matrix = compiled.encoder.encode(rows)
    singles = [np.ascontiguousarray(matrix[i : i + 1]) for i in range(len(rows))]
    trees = compiled.trees

    def trees_call(i: int) -> None:
        trees.predict_raw(singles[i % len(singles)])

    def predict_call(i: int) -> None:
        compiled.predict([rows[i % len(rows)]])

    batch = [_timed(lambda _: compiled.predict(rows), 1) / len(rows) for _ in range(repeats)]
    return {
        "backend": compiled.trees.backend,
        "compile_s": round(compile_s, 1),
        "trees_us": _median_us(trees_call, calls, repeats),
        "predict_us": _median_us(predict_call, calls, repeats),
        "batch_us_per_row": round(statistics.median(batch) * 1e6, 2),
    }


def _median_us(call: Any, calls: int, repeats: int) -> float:
    call(0)
    return round(statistics.median(_timed(call, calls) / calls for _ in range(repeats)) * 1e6, 2)


def _timed(call: Any, calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        call(i)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
