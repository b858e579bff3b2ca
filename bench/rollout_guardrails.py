"""Guardrails under peeking: false rollbacks of A/A rollouts, power against a worse candidate.

Usage: python bench/rollout_guardrails.py [--runs 100] [--max-orders 3000] [--peek 100]
       [--seed 20261202] [--pool-orders 4000]

1. A residual pool: the session model's recipe (``arrive.testing.trained``: the same
   marketplace generator, trainer and parameters, on ``--pool-orders`` orders over 8 days)
   is trained, and its test day (time split, never seen by training or calibration) gives
   rows of (actual duration, P50, P90): the model's real out-of-sample errors.
2. Traffic: each joined order is a row drawn from the pool with replacement; versions are
   built from it (below), one order a second, one market, no fallbacks.
3. After every ``--peek`` joined orders, :func:`arrive.rollout.guardrails.evaluate` with
   the default :class:`Guardrails` judges the rows so far; the first ``breach`` is a
   rollback (evaluation goes on after a ``pass``, as the next step's would).

Scenarios, ``--runs`` each, run ``i`` seeded ``seed + i``:

* ``canary_aa`` / ``canary_worse``: a 50 % canary, each order served by one version
  (two-sample). The worse candidate's P50 error is the drawn error × 1.1 (P50 MAE
  exactly +10 %), its P90 at the same offset × 1.1.
* ``shadow_aa`` / ``shadow_worse``: both versions predict every order (shadow scoring,
  paired). The worse candidate is the model plus independent normal noise whose size
  makes its P50 MAE on the pool exactly +10 % (solved in closed form, not on the runs);
  in the A/A both versions are the model plus independent noise of that same size.
* ``paired_canary_aa`` / ``paired_canary_worse``: a 50 % canary as served today: each
  order answered by one version (``variant`` ``control`` / ``candidate``) and scored by
  the other in the shadow (``variant`` ``shadow``), the versions as in the shadow
  scenarios (same draws for the same seed). The P50 MAE, late and coverage rails read
  the pairs; the fallback and delivery-p95 rails the answered rows.

Orders are counted as joined rows: the shadow and paired scenarios have two rows per
order (one per version), so their orders are half the figure.

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist

import numpy as np
import polars as pl

from arrive.rollout.guardrails import Guardrails, evaluate

START = datetime(2026, 3, 2, tzinfo=UTC)
Pool = dict[str, np.ndarray]
Build = Callable[[Pool, float, int, np.random.Generator], pl.DataFrame]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--max-orders", type=int, default=3000)
    parser.add_argument("--peek", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--pool-orders", type=int, default=4000)
    parser.add_argument("--canary-orders", type=int, default=12000)
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="scenarios to run")
    args = parser.parse_args(argv)
    pool = residual_pool(args.pool_orders)
    tau = noise_for(pool, 1.10)
    out: dict[str, object] = {
        "pool": {
            "rows": int(pool["y"].size),
            "p50_mae_s": round(float(np.abs(pool["y"] - pool["p50"]).mean()), 1),
            "p90_coverage": round(float((pool["y"] <= pool["p90"]).mean()), 3),
            "noise_sd_for_plus_10pct_s": round(tau, 1),
        },
        "rails": str(Guardrails()),
    }
    for name, build in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        limit = max(args.max_orders, args.canary_orders if name.startswith("canary") else 0)
        results = [
            run(build, pool, tau, (limit, args.peek), args.seed + i) for i in range(args.runs)
        ]
        out[name] = summary(results, args.max_orders, limit)
        print(name, out[name], round(time.perf_counter() - started, 1), "s", file=sys.stderr)
    print(json.dumps(out, indent=2))


def residual_pool(n_orders: int) -> Pool:
    """Actual, P50 and P90 of the session model's recipe on its test day."""
    from arrive.models.artifact import ModelBundle
    from arrive.testing.factories import random_marketplace, write_data_dir
    from arrive.testing.trained import TIMEZONE
    from arrive.training.dataset import load_training_set
    from arrive.training.pipeline import TrainConfig, run_training
    from arrive.training.split import make_split

    config = TrainConfig(
        select_groups=False,
        model_params={"n_estimators": 80, "early_stopping_rounds": 1000, "num_leaves": 15},
    )
    with tempfile.TemporaryDirectory() as work:
        market = random_marketplace(seed=1, n_orders=n_orders, days=8)
        data = write_data_dir(Path(work) / "data", market, TIMEZONE)
        result = run_training(data, Path(work) / "run", config)
        files = {p.name: p.read_bytes() for p in (result.run_dir / "model").iterdir()}
        model = ModelBundle.from_files(files).model
        ts = load_training_set(data)
    created = ts.orders.get_column("created_at")
    split = make_split(created, config.split, fractions=config.fractions, seed=config.seed)
    predicted = model.predict(result.features.frame.drop("order_id")[split.test])
    y = np.asarray(ts.target_s, dtype=np.float64)[split.test]
    q50, q90 = model.quantiles_.index(0.5), model.quantiles_.index(0.9)
    return {"y": y, "p50": predicted[:, q50], "p90": predicted[:, q90]}


def noise_for(pool: Pool, ratio: float) -> float:
    """The sd of normal noise added to the P50 that multiplies its MAE on the pool by ``ratio``
    (the folded normal's mean, averaged over the pool's errors)."""
    errors = pool["y"] - pool["p50"]
    target = ratio * float(np.abs(errors).mean())

    def mae_with(sd: float) -> float:
        below = np.array([NormalDist().cdf(-e / sd) for e in errors])
        folded = sd * math.sqrt(2 / math.pi) * np.exp(-(errors**2) / (2 * sd * sd))
        return float((folded + errors * (1 - 2 * below)).mean())

    low, high = 1e-6, 100 * float(np.abs(errors).max())
    while high - low > 1e-6 * high:  # bisection: the MAE grows with the noise
        low, high = (
            (low, (low + high) / 2)
            if mae_with((low + high) / 2) > target
            else ((low + high) / 2, high)
        )
    return (low + high) / 2


def _rows(
    version: str, y: np.ndarray, p50: np.ndarray, p90: np.ndarray, ids: np.ndarray
) -> pl.DataFrame:
    created = [START + timedelta(seconds=int(i)) for i in ids]
    return pl.DataFrame(
        {
            "order_id": [f"o{i}" for i in ids],
            "version": version,
            "time": created,
            "created_at": created,
            "outcome_time": [
                c + timedelta(seconds=float(s)) for c, s in zip(created, y, strict=True)
            ],
            "p50_s": p50,
            "p90_s": p90,
            "fallback": "none",
            "market_id": "m",
        }
    )


def canary(worse: bool) -> Build:
    def build(pool: Pool, _tau: float, n: int, rng: np.random.Generator) -> pl.DataFrame:
        pick = rng.integers(0, pool["y"].size, n)
        y, p50, p90 = (pool[k][pick] for k in ("y", "p50", "p90"))
        ids = np.arange(n)
        on_candidate = rng.random(n) < 0.5
        if worse:
            scale = np.where(on_candidate, 1.1, 1.0)
            p50, p90 = y - scale * (y - p50), y - scale * (y - p50) + scale * (p90 - p50)
        versions = np.where(on_candidate, "2", "1")
        frame = _rows("1", y, p50, p90, ids)
        return frame.with_columns(version=pl.Series(versions))

    return build


def shadow(worse: bool) -> Build:
    def build(pool: Pool, tau: float, n: int, rng: np.random.Generator) -> pl.DataFrame:
        pick = rng.integers(0, pool["y"].size, n // 2)
        y, p50, p90 = (pool[k][pick] for k in ("y", "p50", "p90"))
        ids = np.arange(n // 2)
        noise_c = rng.normal(0.0, tau, ids.size)
        noise_0 = np.zeros(ids.size) if worse else rng.normal(0.0, tau, ids.size)
        control = _rows("1", y, p50 + noise_0, p90 + noise_0, ids)
        candidate = _rows("2", y, p50 + noise_c, p90 + noise_c, ids)
        return pl.concat([control, candidate]).sort("time", maintain_order=True)

    return build


def paired_canary(worse: bool) -> Build:
    def build(pool: Pool, tau: float, n: int, rng: np.random.Generator) -> pl.DataFrame:
        both = shadow(worse)(pool, tau, n, rng)  # the same draws as the shadow scenario
        on_candidate = rng.random(n // 2) < 0.5
        order = both.get_column("order_id").str.slice(1).cast(pl.Int64).to_numpy()
        by_candidate = on_candidate[order]
        variant = np.where(
            both.get_column("version").to_numpy() == "2",
            np.where(by_candidate, "candidate", "shadow"),
            np.where(by_candidate, "shadow", "control"),
        )
        return both.with_columns(variant=pl.Series(variant))

    return build


SCENARIOS = {
    "canary_aa": canary(worse=False),
    "canary_worse": canary(worse=True),
    "shadow_aa": shadow(worse=False),
    "shadow_worse": shadow(worse=True),
    "paired_canary_aa": paired_canary(worse=False),
    "paired_canary_worse": paired_canary(worse=True),
}


def run(
    build: Build, pool: Pool, tau: float, plan: tuple[int, int], seed: int
) -> dict[str, object]:
    """One rollout of ``plan`` = (joined orders, peek every): the joined orders at its first
    breach (None), and at its first pass."""
    limit, peek = plan
    rows = build(pool, tau, limit, np.random.default_rng(seed))
    passed_at = None
    for joined in range(peek, limit + 1, peek):
        verdict = evaluate(rows.head(joined), "1", "2", Guardrails())
        if verdict.action == "breach":
            return {"breach_at": joined, "passed_at": passed_at, "reason": verdict.reason}
        if verdict.action == "pass" and passed_at is None:
            passed_at = joined
    return {"breach_at": None, "passed_at": passed_at, "reason": None, "last": verdict.reason}


def summary(results: list[dict[str, object]], within: int, limit: int) -> dict[str, object]:
    """Rollbacks within ``within`` joined orders, and within ``limit`` with their median."""
    breaches = [r["breach_at"] for r in results if isinstance(r["breach_at"], int)]
    passes = [r["passed_at"] for r in results if isinstance(r["passed_at"], int)]
    rails = sorted({str(r["reason"]).split(" ", 2)[1] for r in results if r["reason"]})
    return {
        "runs": len(results),
        f"rolled_back_within_{within}": sum(b <= within for b in breaches),
        f"rolled_back_within_{limit}": len(breaches),
        "median_orders_to_rollback": statistics.median(breaches) if breaches else None,
        f"passed_within_{limit}": len(passes),
        "first_rails_breached": rails,
        "rails_undecided_at_the_end": dict(Counter(_undecided(results)).most_common()),
    }


def _undecided(results: list[dict[str, object]]) -> list[str]:
    """The rails still undecided at the last look, over the runs that ended on a hold."""
    last = [str(r["last"]) for r in results if str(r.get("last", "")).startswith("undecided: ")]
    parts = [part for reason in last for part in reason.removeprefix("undecided: ").split("; ")]
    return [part.split(" ", 1)[0] for part in parts]


if __name__ == "__main__":
    main(sys.argv[1:])
