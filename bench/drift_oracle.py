"""What a fully adapted model errs after the drift demo's regime change, against before.

The drift demo's figure (issue 25) asks production's P50 MAE after the drift to come
back within 5 % of its level before. This bench asks whether any model of the demo's
recipe can. It trains that recipe (the daily retrain's ``TrainConfig``) twice: on the
seven days before the drift, and on the days after it (seven in the demo; the features
still look back over the whole event log). Each run has its own time split, and their
P50 MAE is compared on their own test orders (the latest 15 % of each window). Neither
is a served model: the "after" model has learnt only the new regime, which no retrain
two days after the drift can have. Each is also scored relative to the mean delivery
time of its test orders::

    PYTHONPATH=src python bench/drift_oracle.py --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from arrive import datadir
from arrive.demo import retrain_drift
from arrive.demo.retrain_drift import DriftScenario
from arrive.ingest.simulator import simulate, write_simulation
from arrive.training.pipeline import TrainConfig, run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = [_seed(seed) for seed in args.seeds]
    for result in results:
        print(_line(result))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"python {platform.python_version()}")


def _seed(seed: int) -> dict[str, Any]:
    scenario = DriftScenario(seed=seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="drift-oracle-") as tmp:
        work = Path(tmp)
        full = work / "data"
        with datadir.staged(full) as folder:
            write_simulation(simulate(scenario.simulation()), folder)
        drift = scenario.simulation().start_time + timedelta(days=scenario.drift_at)
        before = retrain_drift.data_until(full, work / "before", drift)
        days_after = scenario.days - scenario.drift_at
        config = replace(scenario.retrain.train, report=False)
        before_fit = _fit(before, work / "run-before", replace(config, window_days=7))
        after_fit = _fit(full, work / "run-after", replace(config, window_days=days_after))
    result: dict[str, Any] = {"seed": seed, "drift_day": scenario.drift_at}
    result |= {"before": before_fit, "after": after_fit}
    result["after_over_before"] = round(after_fit["p50_mae_s"] / before_fit["p50_mae_s"], 4)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _fit(data: Path, run_dir: Path, config: TrainConfig) -> dict[str, Any]:
    trained = run_training(data, run_dir, config)
    ts, split, bundle = trained.training_set, trained.split, trained.bundle
    if ts is None or split is None or bundle is None:
        raise SystemExit("run_training returned no training set, split or model")
    test = split.test
    y = ts.target_s[test]
    pred = bundle.model.predict(trained.features.frame.drop("order_id")[test])
    quantiles = list(bundle.model.quantiles_)
    p50, p90 = pred[:, quantiles.index(0.5)], pred[:, quantiles.index(0.9)]
    created = ts.orders.get_column("created_at")[test]
    mae = float(np.abs(p50 - y).mean())
    return {
        "orders": len(ts.target_s),
        "test_orders": len(test),
        "test_from": str(created.min()),
        "test_to": str(created.max()),
        "p50_mae_s": round(mae, 2),
        "p90_coverage": round(float(np.mean(y <= p90)), 4),
        "mean_delivery_s": round(float(np.mean(y)), 1),
        "relative": round(mae / float(np.mean(y)), 4),
    }


def _line(result: dict[str, Any]) -> str:
    b, a = result["before"], result["after"]
    return (
        f"seed {result['seed']}: before the drift {b['p50_mae_s'] / 60:.2f} min "
        f"({b['relative']:.1%} of {b['mean_delivery_s'] / 60:.1f} min, "
        f"{b['test_orders']} test orders); "
        f"after it {a['p50_mae_s'] / 60:.2f} min ({a['relative']:.1%} of "
        f"{a['mean_delivery_s'] / 60:.1f} min, {a['test_orders']} test orders); "
        f"after / before {result['after_over_before']:.3f} ({result['seconds']:.0f} s)"
    )


if __name__ == "__main__":
    main()
