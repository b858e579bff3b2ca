"""Where P90 calibration goes wrong: coverage on the test period by calibration window.

Usage: python bench/calibration_variants.py DATA_DIR [--threads 1]

Keeps every feature group (no selection) and trains twice on the share time split (the
calibration window is 10 % of the orders, ``--calib-days off``): the
first fit (training orders, early-stopped on validation) and its refit on training +
validation. Each variant then calibrates on a different window (or with other weights)
and is scored on the same test orders. Prints one JSON record.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.calibration import Window, apply_scales, fit_calibration
from arrive.models import QuantileEta
from arrive.training.dataset import load_training_set
from arrive.training.split import SplitFractions, make_split

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: the split these variants were measured on: a calibration window of 10 % of the orders
SHARE = SplitFractions(calib_days=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    ts = load_training_set(args.data_dir)
    split = make_split(ts.orders.get_column("created_at"), fractions=SHARE)
    X, y = ts.features.frame.drop("order_id"), ts.target_s
    first = QuantileEta(n_jobs=args.threads).fit(
        X[split.train],
        y[split.train],
        categorical=ts.features.categorical,
        eval_set=(X[split.valid], y[split.valid]),
    )
    refit = QuantileEta.from_files(first.to_files())
    seen = np.sort(np.concatenate([split.train, split.valid]))
    refit.refit(X[seen], y[seen])

    def window(model: QuantileEta, rows: IntArray) -> Window:
        return model.predict_raw(X[rows]), y[rows]

    before = np.concatenate([split.valid, split.calib])
    quarter = before[-len(before) // 4 :]
    variants: dict[str, tuple[QuantileEta, list[Window], float | None]] = {
        "first fit, calibration window (default)": (first, [window(first, split.calib)], None),
        "first fit, validation window (older)": (first, [window(first, split.valid)], None),
        "first fit, validation + calibration": (first, [window(first, before)], None),
        "first fit, last quarter of validation + calibration": (
            first,
            [window(first, quarter)],
            None,
        ),
        "refit, calibration window only": (refit, [window(refit, split.calib)], None),
        "refit, pooled with the first fit's validation window (--refit)": (
            refit,
            [window(first, split.valid), window(refit, split.calib)],
            None,
        ),
    }
    for half_life in (1.0, 0.5, 0.25):
        variants[f"--refit, recency half-life {half_life} of the pooled windows"] = (
            refit,
            [window(first, split.valid), window(refit, split.calib)],
            half_life,
        )
    variants["oracle: refit calibrated on the test period itself"] = (
        refit,
        [window(refit, split.test)],
        None,
    )
    score = _scorer(X[split.test], y[split.test])
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "data": args.data_dir.name,
                "variants": {name: score(*spec) for name, spec in variants.items()},
            },
            indent=2,
        )
    )


def _scorer(
    X_test: pl.DataFrame, y_test: FloatArray
) -> Callable[[QuantileEta, list[Window], float | None], dict[str, float]]:
    def score(
        model: QuantileEta, windows: list[Window], half_life: float | None
    ) -> dict[str, float]:
        offset, scales = fit_calibration(windows, model.quantiles_, half_life=half_life)
        pred = apply_scales(model.predict_raw(X_test), model.quantiles_, scales, offset)
        return {
            "p50_mae_min": round(float(np.abs(pred[:, 0] - y_test).mean()) / 60, 3),
            "p50_coverage": round(float(np.mean(y_test <= pred[:, 0])), 4),
            "p90_coverage": round(float(np.mean(y_test <= pred[:, -1])), 4),
            "p90_scale": round(scales[max(model.quantiles_)], 3),
        }

    return score


if __name__ == "__main__":
    main()
