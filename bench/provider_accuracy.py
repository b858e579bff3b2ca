"""Accuracy with the travel-time provider's answer as a model input (issue 22, item 5).

Usage: python bench/provider_accuracy.py [--seeds 0 1] [--days 14] [--orders-per-day 3000]

For each seed, simulates one marketplace twice, identical but for the
``travel_time_observation`` events of ``--provider-observations`` (what the simulated
vendor answered for each order's store→drop leg when its ETA was quoted), and trains
on the same time split (the pipeline's default fractions, no group selection so that
only the input differs):

- ``builtin``: the built-in speed-by-hour table only (no provider history);
- ``provider``: the provider's travel time as a feature (``travel_time_provider_s``);
- ``residual``: the same features, the model predicting the residual over the provider's
  time (DeepETA's framing): target ``duration − travel_time_provider_s``, answer
  ``travel_time_provider_s + prediction`` (the built-in estimate where an order has no
  provider time).

Each model is calibrated on the pipeline's calibration window; P50 MAE and P90 coverage
are measured on the test period (the latest orders).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from arrive import datadir
from arrive.features.offline import FeatureSet
from arrive.ingest.simulator import SimulationConfig, simulate, write_simulation
from arrive.training.dataset import load_training_set
from arrive.training.pipeline import TrainConfig, calibrate_model, fit_model, select_features
from arrive.training.split import make_split

PROVIDER = "travel_time_provider_s"
BUILTIN = "travel_estimate_s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--orders-per-day", type=int, default=3000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rows.extend(_bench(Path(tmp) / str(seed), seed, args.days, args.orders_per_day))
    medians = {
        variant: {
            metric: statistics.median(r[metric] for r in rows if r["variant"] == variant)
            for metric in ("mae_p50_s", "coverage_p90")
        }
        for variant in ("builtin", "provider", "residual")
    }
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
                "runs": rows,
                "median_over_seeds": medians,
            },
            indent=2,
        )
    )


def _bench(root: Path, seed: int, days: int, per_day: int) -> list[dict[str, Any]]:
    config = TrainConfig(select_groups=False)
    out = []
    for observed in (False, True):
        sim = SimulationConfig(
            seed=seed, days=days, orders_per_day=per_day, provider_observations=observed
        )
        directory = root / ("with" if observed else "without")
        with datadir.staged(directory) as stage:
            write_simulation(simulate(sim), stage)
        ts = load_training_set(directory)
        split = make_split(ts.orders.get_column("created_at"), "time", fractions=config.fractions)
        features, _ = select_features(ts, split, config)
        y = ts.target_s
        if not observed:
            out.append(_measure("builtin", seed, features, y, np.zeros_like(y), split, config))
            continue
        assert PROVIDER in features.names, "the provider feature was not built"
        base = features.frame.select(pl.coalesce(PROVIDER, BUILTIN)).to_series().to_numpy()
        out.append(_measure("provider", seed, features, y, np.zeros_like(y), split, config))
        out.append(_measure("residual", seed, features, y, base, split, config))
    return out


def _measure(
    variant: str,
    seed: int,
    features: FeatureSet,
    y: np.ndarray,
    base: np.ndarray,
    split: Any,
    config: TrainConfig,
) -> dict[str, Any]:
    """Fit on ``y − base``, calibrate, and judge ``base + prediction`` on the test period."""
    model, backtest = fit_model(features, y - base, split, config)
    calibrate_model(model, features, y - base, split, backtest)
    X = features.frame.drop("order_id")[split.test]
    predicted = model.predict(X) + base[split.test, None]
    actual = y[split.test]
    return {
        "variant": variant,
        "seed": seed,
        "test_orders": len(actual),
        "mae_p50_s": round(float(np.abs(predicted[:, 0] - actual).mean()), 1),
        "coverage_p90": round(float((actual <= predicted[:, 1]).mean()), 4),
    }


if __name__ == "__main__":
    main()
