"""The drift demo's recovery figure (issue 25) per seed, under one retrain policy.

Runs :func:`arrive.demo.retrain_drift.run_drift_demo` with the demo's defaults (14 days,
1,500 orders a day, rides 30 % slower from day 7, a retrain at the end of every day) for
each seed, and prints per day: the mean delivery time, the version serving, production's
P50 MAE and P90 coverage, and the retrain's decision; then the recovery figure in minutes
and relative to the mean delivery time. ``--json`` writes every seed's figures.

    python bench/drift_recovery.py --seeds 0 1 --workdir /tmp/dr --json /tmp/dr.json
    python bench/drift_recovery.py --seeds 0 --final-fit held-out

``--final-fit``: the retrain's ``RetrainSettings.final_fit`` (``all``: a winner is trained
again on every order before it is registered; ``before-window``: up to the data's last
calibration window; ``held-out``: the evaluated model is registered). Omitted: the
retrain's default (and, on a commit without the setting, the only behaviour: the
evaluated model). The relative recovery day is computed here, not read from the demo's
``Recovery``, so that the script also runs on commits before it had one.
``--test-frac``: the retrain's test window as a share of the orders (default 0.15).
``--gate``: the retrain's ``RetrainSettings.gate_rule`` (``better``: a candidate must beat
production by the margin; ``non-regression``: a refresh of production's recipe is served
unless worse by more than ``--max-regression`` in P50 MAE or ``--max-coverage-loss`` in P90
coverage); omitted: the retrain's defaults.

    python bench/drift_recovery.py --seeds 0 --gate non-regression --max-regression 0.01
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, cast, get_args

import numpy as np

from arrive.cli.options import name_values
from arrive.demo import retrain_drift
from arrive.demo.retrain_drift import DriftDemo, DriftScenario
from arrive.errors import ConfigError
from arrive.training.retrain import FinalFitPolicy, GateRule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/drift-recovery"))
    parser.add_argument("--final-fit", choices=get_args(FinalFitPolicy), default=None)
    parser.add_argument("--test-frac", type=float, default=None)
    parser.add_argument("--gate", choices=["better", "non-regression"], default=None)
    parser.add_argument("--max-regression", type=float, default=None)
    parser.add_argument("--max-coverage-loss", type=float, default=None)
    parser.add_argument(
        "--model-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a QuantileEta parameter of every retrain (e.g. calib_half_life=0.25); repeatable",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        scenario = _scenario(seed, args)
        started = time.perf_counter()
        demo = retrain_drift.run_drift_demo(args.workdir / f"seed-{seed}", scenario, _quiet)
        seconds = time.perf_counter() - started
        result = {"seed": seed, "final_fit": args.final_fit, "test_frac": args.test_frac}
        result |= {"gate": args.gate, "max_regression": args.max_regression}
        result["max_coverage_loss"] = args.max_coverage_loss
        result["model_params"] = dict(scenario.retrain.train.model_params)
        result["seconds"] = round(seconds, 1)
        result |= retrain_drift.figures_json(demo)
        results.append(result)
        print(_table(demo, seed, seconds))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"python {platform.python_version()}")


def _scenario(seed: int, args: argparse.Namespace) -> DriftScenario:
    scenario = DriftScenario(seed=seed)
    retrain = scenario.retrain
    if args.final_fit is not None:
        retrain = replace(retrain, final_fit=cast(FinalFitPolicy, args.final_fit))
    if args.gate is not None:
        retrain = replace(retrain, gate_rule=cast(GateRule, args.gate))
    if args.max_regression is not None:
        retrain = replace(retrain, max_regression=args.max_regression)
    if args.max_coverage_loss is not None:
        retrain = replace(retrain, max_coverage_loss=args.max_coverage_loss)
    if args.test_frac is not None:
        fractions = replace(retrain.train.fractions, test=args.test_frac)
        retrain = replace(retrain, train=replace(retrain.train, fractions=fractions))
    if args.model_param:
        try:
            given = name_values(args.model_param, "--model-param")
        except ConfigError as exc:
            raise SystemExit(str(exc)) from None
        params = dict(retrain.train.model_params) | given
        retrain = replace(retrain, train=replace(retrain.train, model_params=params))
    return replace(scenario, retrain=retrain)


def _quiet(_what: str, _done: int, _total: int) -> None:
    return None


def _table(demo: DriftDemo, seed: int, seconds: float) -> str:
    rec = demo.recovery
    lines = [
        f"seed {seed}: {seconds:.0f} s",
        "| day | mean delivery | production | P50 MAE | MAE / mean | P90 cov. | retrain |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in demo.days:
        mae = "—" if d.production is None else f"{d.production.mae_s / 60:.2f} min"
        rel = "—" if d.production is None else f"{d.production.mae_s / d.mean_duration_s:.1%}"
        cov = "—" if d.production is None else f"{d.production.p90_coverage:.1%}"
        decision = "—" if d.outcome is None else f"{d.outcome.status}: {d.outcome.reason}"
        mark = " drift" if d.day == rec.drift_day else ""
        lines.append(
            f"| {d.day}{mark} | {d.mean_duration_s / 60:.1f} min | "
            f"{d.production_version or '—'} | {mae} | {rel} | {cov} | {decision} |"
        )
    lines.append(_figure(rec))
    return "\n".join(lines)


def _figure(rec: Any) -> str:
    post = ", ".join(f"{v / 60:.2f}" for v in rec.post_mae_s.values())
    rel_post = ", ".join(f"{v:.1%}" for v in rec.post_relative.values())
    bound_rel = rec.pre_relative * (1 + retrain_drift.RECOVERY_TOLERANCE)
    rel_day = next((d for d, v in rec.post_relative.items() if v <= bound_rel), None)
    return (
        f"absolute: pre {rec.pre_level_s / 60:.2f} min (days {rec.pre_days}), bound "
        f"{rec.pre_level_s * (1 + retrain_drift.RECOVERY_TOLERANCE) / 60:.2f}; post {post}; "
        f"recovered day {rec.recovered_day}, within two days: {rec.within}\n"
        f"relative: pre {rec.pre_relative:.1%} (bound {bound_rel:.2%}); post {rel_post}; "
        f"recovered day {rel_day}; median post {np.median(list(rec.post_relative.values())):.1%}"
    )


if __name__ == "__main__":
    main()
