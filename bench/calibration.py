"""P90 calibration and the fallback heuristic on time splits, with and without a refit.

Usage: python bench/calibration.py DATA_DIR [DATA_DIR ...] [--no-selection]
       [--heuristic-only] [--threads 1]

Each DATA_DIR comes from ``arrive import`` or ``arrive simulate``. On the default time
split (train on the earliest orders, early-stop on the next, calibrate on the next, test
on the latest) the script scores, on the same test orders:

* ``model_first_fit``: the boosters trained on the training orders, calibrated on the
  calibration window (``arrive train``'s default);
* ``model_refit_pooled``: trained again on training + validation orders, the P90 scale
  pooling the first fit's validation window with the calibration window
  (``arrive train --refit``);
* ``model_refit_calib_window_only``: the refit calibrated on the calibration window;
* the heuristic with the fixed levels (store × hour → … → global) and with the levels
  chosen from the data (:func:`~arrive.training.pipeline.fit_heuristic`).

Prints one JSON record per dataset: P50 MAE (minutes), P50 and P90 coverage, and the
seconds each part took.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from arrive.fallback import DEFAULT_LEVELS, HeuristicEta
from arrive.training.dataset import TrainingSet, load_training_set
from arrive.training.pipeline import (
    TrainConfig,
    calibrate_model,
    fit_heuristic,
    fit_model,
    select_features,
)
from arrive.training.split import Split, make_split

FloatArray = npt.NDArray[np.float64]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", type=Path, nargs="+")
    parser.add_argument("--no-selection", action="store_true", help="Keep every feature group.")
    parser.add_argument("--heuristic-only", action="store_true", help="Skip the models.")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    config = TrainConfig(select_groups=not args.no_selection, model_params={"n_jobs": args.threads})
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "selection": config.select_groups,
                "results": [
                    _heuristics(d) if args.heuristic_only else _bench(d, config)
                    for d in args.data_dirs
                ],
            },
            indent=2,
        )
    )


def _bench(data_dir: Path, config: TrainConfig) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    ts = load_training_set(data_dir)
    split = make_split(ts.orders.get_column("created_at"))
    features, _ = select_features(ts, split, config)
    seconds["features_and_selection"] = time.perf_counter() - started
    X = features.frame.drop("order_id")
    y, test = ts.target_s, split.test
    started = time.perf_counter()
    old, _ = fit_model(features, y, split, replace(config, refit=False))
    old.calibrate(X[split.calib], y[split.calib])
    seconds["old_model"] = time.perf_counter() - started
    started = time.perf_counter()
    new, backtest = fit_model(features, y, split, replace(config, refit=True))
    calibrate_model(new, features, y, split, backtest)
    seconds["new_model"] = time.perf_counter() - started
    new_scores = _scores(y[test], new.predict(X[test]))
    refit_only = _scores(y[test], new.calibrate(X[split.calib], y[split.calib]).predict(X[test]))
    started = time.perf_counter()
    chosen = fit_heuristic(ts, split, config)
    seconds["heuristic_levels"] = time.perf_counter() - started
    return {
        "data": data_dir.name,
        "n_train_valid_calib_test": [int(p.size) for p in _parts(split)],
        "model_first_fit": _scores(y[test], old.predict(X[test])),
        "model_refit_pooled": new_scores,
        "model_refit_calib_window_only": refit_only,
        "heuristic_fixed_levels": _scores(
            y[test], _fixed_heuristic(ts, split).predict(ts.orders[test])
        ),
        "heuristic_chosen_levels": _scores(y[test], chosen.predict(ts.orders[test])),
        "heuristic_levels": list(chosen.level_names_),
        "rounds": {str(q): r for q, r in new.rounds_.items()},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def _heuristics(data_dir: Path) -> dict[str, Any]:
    ts = load_training_set(data_dir)
    split = make_split(ts.orders.get_column("created_at"))
    y, test = ts.target_s[split.test], ts.orders[split.test]
    chosen = fit_heuristic(ts, split, TrainConfig())
    return {
        "data": data_dir.name,
        "heuristic_fixed_levels": _scores(y, _fixed_heuristic(ts, split).predict(test)),
        "heuristic_chosen_levels": _scores(y, chosen.predict(test)),
        "heuristic_levels": list(chosen.level_names_),
    }


def _parts(split: Split) -> tuple[npt.NDArray[np.int64], ...]:
    return split.train, split.valid, split.calib, split.test


def _fixed_heuristic(ts: TrainingSet, split: Split) -> HeuristicEta:
    seen = ts.orders[np.concatenate([split.train, split.valid, split.calib])]
    levels = [lv for lv in DEFAULT_LEVELS if all(c in seen.columns for c in lv)]
    return HeuristicEta(levels).fit(seen)


def _scores(y: FloatArray, pred: FloatArray) -> dict[str, float]:
    return {
        "p50_mae_min": round(float(np.abs(pred[:, 0] - y).mean()) / 60, 3),
        "p50_coverage": round(float(np.mean(y <= pred[:, 0])), 4),
        "p90_coverage": round(float(np.mean(y <= pred[:, -1])), 4),
    }


if __name__ == "__main__":
    main()
