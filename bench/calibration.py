"""P90 calibration of the model and the fallback heuristic on time splits, by window.

Usage: python bench/calibration.py DATA_DIR [DATA_DIR ...] [--no-selection]
       [--heuristic-only] [--threads 1]

Each DATA_DIR comes from ``arrive import`` or ``arrive simulate``. Two time splits with
the same test period (the latest 15 % of the orders) and validation share (10 %):

* ``share``: the calibration window is the 10 % of the orders before the test period;
* ``days``: it is the last whole days before the test period
  (``SplitFractions(calib_days="auto")``: a seventh of the days of history, 1 to 7).

For each, ``arrive train``'s steps run as they do there (feature selection on the
validation window unless ``--no-selection``, boosters early-stopped on it, calibrated on
the calibration window), and the heuristic (levels chosen from the data) is scored with
its P90 as fitted and scaled on the calibration window. Prints one JSON record per
dataset: P50 MAE (minutes), P50 and P90 coverage on the test orders, the P90 scales,
and the seconds each part took.
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

from arrive.fallback import HeuristicEta
from arrive.training.dataset import TrainingSet, load_training_set
from arrive.training.pipeline import TrainConfig, fit_heuristic, fit_model, select_features
from arrive.training.split import Split, SplitFractions, make_split

FloatArray = npt.NDArray[np.float64]
WINDOWS = {"share": SplitFractions(calib_days=None), "days": SplitFractions(calib_days="auto")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", type=Path, nargs="+")
    parser.add_argument("--no-selection", action="store_true", help="Keep every feature group.")
    parser.add_argument("--heuristic-only", action="store_true", help="Skip the models.")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    config = TrainConfig(select_groups=not args.no_selection, model_params={"n_jobs": args.threads})
    results = []
    for data_dir in args.data_dirs:
        ts = load_training_set(data_dir)
        results.append(
            {
                "data": data_dir.name,
                **{
                    name: _window(ts, fractions, config, not args.heuristic_only)
                    for name, fractions in WINDOWS.items()
                },
            }
        )
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "load_average": os.getloadavg(),
                "selection": config.select_groups,
                "results": results,
            },
            indent=2,
        )
    )


def _window(
    ts: TrainingSet, fractions: SplitFractions, config: TrainConfig, with_model: bool
) -> dict[str, Any]:
    split = make_split(ts.orders.get_column("created_at"), fractions=fractions)
    y, test = ts.target_s, split.test
    out: dict[str, Any] = {
        "calib_days": split.calib_days,
        "n_train_valid_calib_test": [int(p.size) for p in _parts(split)],
    }
    seconds: dict[str, float] = {}
    if with_model:
        started = time.perf_counter()
        features, _ = select_features(ts, split, config)
        model, _ = fit_model(features, y, split, config)
        X = features.frame.drop("order_id")
        model.calibrate(X[split.calib], y[split.calib])
        out["model"] = {
            **_scores(y[test], model.predict(X[test])),
            "p90_scale": round(model.scales_[max(model.quantiles_)], 3),
        }
        seconds["model"] = time.perf_counter() - started
    started = time.perf_counter()
    for name, calibrated in (("heuristic_as_fitted", False), ("heuristic_calibrated", True)):
        heuristic = fit_heuristic(ts, split, replace(config, calibrate_heuristic=calibrated))
        out[name] = _heuristic_scores(heuristic, ts, split)
    out["heuristic_levels"] = list(heuristic.level_names_)
    seconds["heuristics"] = time.perf_counter() - started
    out["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    return out


def _heuristic_scores(heuristic: HeuristicEta, ts: TrainingSet, split: Split) -> dict[str, Any]:
    scores: dict[str, Any] = _scores(
        ts.target_s[split.test], heuristic.predict(ts.orders[split.test])
    )
    if heuristic.scales_:
        scores["p90_scale"] = round(heuristic.scales_[max(heuristic.quantiles_)], 3)
    return scores


def _parts(split: Split) -> tuple[npt.NDArray[np.int64], ...]:
    return split.train, split.valid, split.calib, split.test


def _scores(y: FloatArray, pred: FloatArray) -> dict[str, float]:
    return {
        "p50_mae_min": round(float(np.abs(pred[:, 0] - y).mean()) / 60, 3),
        "p50_coverage": round(float(np.mean(y <= pred[:, 0])), 4),
        "p90_coverage": round(float(np.mean(y <= pred[:, -1])), 4),
    }


if __name__ == "__main__":
    main()
