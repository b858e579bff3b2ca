"""Feature drift and production skew on a real data directory: what they find, what they cost.

Usage: python bench/drift_bench.py DATA_DIR [--rows 1000000] [--sample 1000] [--runs 3]

1. The training set of DATA_DIR (point-in-time features) is split by time as training
   splits it; the reference profile is made from the training rows.
2. Real drift: the PSI of every profiled feature over the test period (the latest orders),
   against that profile.
3. Cost of :func:`psi_by_feature`: a prediction log of ``--rows`` rows (test vectors drawn
   with replacement, JSON-encoded as the service logs them); median of ``--runs``.
4. :func:`skew_sample` on ``--sample`` test orders whose logged features are the offline
   builder's own values at creation (a correct service): its time, and the mismatches it
   finds (0 expected); then with the local hour shifted by one in the log (every sampled
   order expected to mismatch on ``hour_local`` alone).

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from arrive.features import calendar
from arrive.models.profile import Profile, profile_of
from arrive.monitoring.drift import psi_by_feature
from arrive.monitoring.skew import skew_sample
from arrive.training.dataset import load_training_set
from arrive.training.split import make_split


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    ts = load_training_set(args.data_dir)
    split = make_split(ts.orders.get_column("created_at"))
    frame = ts.features.frame
    kinds = {s.name: s.kind for s in ts.features.specs}
    started = time.perf_counter()
    profile = profile_of(frame[split.train], kinds, skip=calendar.CYCLIC)
    profile_s = time.perf_counter() - started
    test = frame[split.test]
    real = psi_by_feature(profile, _log(test), min_orders=1).sort("psi", descending=True)
    out = {
        "data_dir": str(args.data_dir),
        "train_rows": profile.rows,
        "test_rows": test.height,
        "profiled_features": len(profile.features),
        "profile_s": round(profile_s, 3),
        "test_psi_top": dict(real.head(8).select("feature", pl.col("psi").round(3)).iter_rows()),
        "test_features_over_0.2": real.filter(pl.col("psi") > 0.2).height,
        "psi_by_feature": _psi_cost(profile, test, args.rows, args.runs),
        "skew": _skew(ts.orders, test, args.data_dir, args.sample),
    }
    print(json.dumps(out, indent=2))


def _log(vectors: pl.DataFrame, times: pl.Series | None = None) -> pl.DataFrame:
    rows = vectors.drop("order_id").iter_rows(named=True)
    encoded = [msgspec.json.encode(_clean(row)).decode() for row in rows]
    log = pl.DataFrame({"order_id": vectors.get_column("order_id"), "features": encoded})
    return log if times is None else log.with_columns(time=times)


def _clean(row: dict[str, object]) -> dict[str, object]:
    return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}


def _psi_cost(profile: Profile, test: pl.DataFrame, rows: int, runs: int) -> dict[str, object]:
    one = _log(test)
    picks = np.random.default_rng(0).integers(0, one.height, rows)
    log = one[picks]
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        psi_by_feature(profile, log)
        seconds.append(time.perf_counter() - started)
    return {"rows": rows, "median_s": round(statistics.median(seconds), 3), "runs_s": seconds}


def _skew(
    orders: pl.DataFrame, test: pl.DataFrame, data_dir: Path, sample: int
) -> dict[str, object]:
    created = orders.select("order_id", "created_at")
    times = test.select("order_id").join(created, on="order_id").get_column("created_at")
    log = _log(test, times)
    started = time.perf_counter()
    found = skew_sample(log, data_dir, sample=sample, seed=0)
    correct_s = time.perf_counter() - started
    shifted = log.with_columns(
        features=pl.col("features").map_elements(_shift_hour, return_dtype=pl.String)
    )
    broken = skew_sample(shifted, data_dir, sample=sample, seed=0)
    return {
        "sample": sample,
        "seconds": round(correct_s, 2),
        "compared": int(found.get_column("compared").max() or 0),
        "mismatches_correct": int(found.get_column("mismatched").sum()),
        "mismatches_hour_shifted": dict(
            broken.filter(pl.col("mismatched") > 0).select("feature", "mismatched").iter_rows()
        ),
        "not_recomputed": found.filter(pl.col("note").is_not_null())["feature"].to_list(),
    }


def _shift_hour(text: str) -> str:
    values = json.loads(text)
    values["hour_local"] = values["hour_local"] + 1.0
    return json.dumps(values)


if __name__ == "__main__":
    main(sys.argv[1:])
