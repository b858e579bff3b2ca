"""Dataset → split → feature selection → train → calibrate → evaluate → report → register.

The bundle carries a probe batch of training rows with the model's predictions on
them; before registering, its files are checked in a child process
(:func:`arrive.models.check.check_files`) as every server checks them before loading,
so a model whose exported text does not reproduce its own predictions is never
registered.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

import arrive
from arrive.calibration import Window
from arrive.errors import ModelIntegrityError
from arrive.evaluation import EvalInput, Evaluation, evaluate, metrics_json
from arrive.fallback import HeuristicEta, choose_levels, key_columns
from arrive.features import FeatureSet, calendar
from arrive.features.provider import FEATURE as PROVIDER_FEATURE
from arrive.models import QuantileEta
from arrive.models.artifact import ModelBundle
from arrive.models.check import check_files, make_probe
from arrive.models.profile import profile_of
from arrive.registry import ModelRegistry
from arrive.training.dataset import TrainingSet, load_training_set
from arrive.training.report import write_report
from arrive.training.selection import (
    GroupDecision,
    drop_groups,
    drop_wide_categoricals,
    select_groups,
    selection_record,
    validation_scorer,
)
from arrive.training.split import Split, SplitFractions, SplitKind, make_split

FloatArray = npt.NDArray[np.float64]
STEPS = ("features", "split", "selection", "train", "calibrate", "evaluate", "report", "register")
_HISTORY_BUCKETS = (0, 1, 10, 100)


@dataclass(frozen=True)
class TrainConfig:
    """What ``arrive train`` does; every field has a sensible default."""

    split: SplitKind = "time"
    fractions: SplitFractions = field(default_factory=SplitFractions)
    quantiles: tuple[float, ...] = (0.5, 0.9)
    seed: int = 0
    max_categories: int = 100
    select_groups: bool = True
    # the per-group selection's probes train on at most this many training orders (a
    # random sample, the same for each probe; None: all): at 500k orders the seven
    # probes took most of a retrain, and which groups help shows on fewer orders
    selection_rows: int | None = 100_000
    # ... and, when the training orders were sampled down so (large data only: smaller
    # sets are selected as before), learn at this rate (None: the model's): they compare
    # groups, and at twice the model's rate they stop in about half the rounds
    selection_learning_rate: float | None = 0.1
    # an earlier model's selection (its ``metrics["selection"]``: ``dropped_groups``,
    # ``selected_on``), applied without training probes: its dropped groups are left out,
    # the others kept (None: select on this data). A daily retrain reuses production's.
    reuse_selection: Mapping[str, Any] | None = None
    # an earlier model's boosting rounds (its ``metrics["rounds"]``: ``per_quantile``,
    # ``chosen_on``, ``recipe``): the trees are trained once for those rounds, on training
    # + validation orders with ``refit`` (else training orders), without early stopping
    # (None: early-stop on this data). A daily retrain reuses production's. Not on Dask.
    reuse_rounds: Mapping[str, Any] | None = None
    model_params: Mapping[str, Any] = field(default_factory=dict)
    heuristic_min_count: int = 30
    # scale the heuristic's P90 on the calibration window (see HeuristicEta.calibrate)
    calibrate_heuristic: bool = True
    # after early stopping, train again on training + validation orders and pool the first
    # fit's validation window into the calibration (opt-in: see docs/benchmarks.md)
    refit: bool = False
    # with refit: pool the first fit's validation window into the calibration (off: the
    # calibration window alone, e.g. retraining's final fits, whose served fit
    # has no such window)
    pool_backtest: bool = True
    dask: Any = None  # a dask.distributed Client: train on the cluster
    # train on the orders of the last window_days days of the data only (a rolling
    # window); the features still look back over the whole event log
    window_days: int | None = None
    # recorded with the registered version (e.g. retraining's inputs and validation)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    # predict the residual over the provider's travel time (the built-in estimate where an
    # order has none) when the data has provider history; without it, trains as usual
    residual: bool = False
    # multiply the training label (fit and calibration; evaluation keeps the true one):
    # a deliberately broken model, e.g. arrive demo --rollout's candidate at 1.3
    label_scale: float = 1.0
    # write run_dir/report.html (off: metrics and model only, e.g. a candidate trained only
    # to be rolled out, or the drift demo's retrains, which report themselves)
    report: bool = True

    @property
    def reused_rounds(self) -> Mapping[str, Any] | None:
        """``reuse_rounds`` where it applies (not on Dask, which early-stops as before)."""
        return self.reuse_rounds if self.dask is None else None


@dataclass(frozen=True)
class TrainResult:
    """What a run produced (``training_set``, ``split`` and ``bundle``: the objects
    themselves, for a caller that evaluates further)."""

    metrics: dict[str, Any]
    run_dir: Path
    version: str | None
    features: FeatureSet
    decisions: list[GroupDecision]
    training_set: TrainingSet | None = None
    split: Split | None = None
    bundle: ModelBundle | None = None


def run_training(
    data_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    registry: ModelRegistry | None = None,
    on_step: Callable[[str], None] = lambda _: None,
) -> TrainResult:
    """Train, evaluate and report on ``data_dir``; register when ``registry`` is given.

    Writes ``run_dir/metrics.json``, ``run_dir/report.html`` (unless ``config.report`` is
    off) and ``run_dir/model/``.
    """
    started = time.perf_counter()
    on_step("features")
    ts = load_training_set(data_dir, config.dask, window_days=config.window_days)
    y = labels(ts, config)
    on_step("split")
    split = make_split(
        ts.orders.get_column("created_at"),
        config.split,
        fractions=config.fractions,
        seed=config.seed,
    )
    on_step("selection")
    features, decisions = select_features(ts, split, config)
    on_step("train")
    model, backtest = fit_model(features, y, split, config)
    on_step("calibrate")
    calibrate_model(model, features, y, split, backtest if config.pool_backtest else None)
    heuristic = fit_heuristic(ts, split, config)
    on_step("evaluate")
    pred = model.predict(features.frame.drop("order_id")[split.test])
    evaluation = _evaluate(ts, features, pred, model.quantiles_, heuristic, split)
    metrics = _metrics(evaluation, ts, split, time.perf_counter() - started)
    if config.select_groups:
        reused = config.reuse_selection
        metrics["selection"] = selection_record(decisions, metrics["data_end"], reused)
    metrics["rounds"] = rounds_record(model, metrics["data_end"], config)
    metrics["heuristic_levels"] = list(heuristic.level_names_)
    run_dir.mkdir(parents=True, exist_ok=True)
    bundle = bundle_of(model, heuristic, features, ts, split.train)
    write_model(run_dir / "model", bundle)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    on_step("report")
    if config.report:
        _report(
            run_dir,
            data_dir=data_dir,
            ts=ts,
            features=features,
            model=model,
            pred=pred,
            evaluation=evaluation,
            split=split,
            metrics=metrics,
            decisions=decisions,
        )
    on_step("register")
    version = register(registry, bundle, metrics, ts, config) if registry else None
    return TrainResult(metrics, run_dir, version, features, decisions, ts, split, bundle)


def labels(ts: TrainingSet, config: TrainConfig) -> FloatArray:
    """The label the model learns and is calibrated on (``config.label_scale`` × the
    duration)."""
    return ts.target_s * config.label_scale if config.label_scale != 1.0 else ts.target_s


def bundle_of(
    model: QuantileEta,
    heuristic: HeuristicEta,
    features: FeatureSet,
    ts: TrainingSet,
    train: npt.NDArray[np.int64],
) -> ModelBundle:
    """The bundle of a fitted model: its feature schema, and the probe and reference
    profile taken from its training rows ``train``."""
    schema = _feature_schema(features, ts.local_timezone)
    train_rows = features.frame.drop("order_id")[train]
    kinds = {s.name: s.kind for s in features.specs}
    profile = profile_of(train_rows, kinds, skip=calendar.CYCLIC)
    return ModelBundle(model, heuristic, schema, make_probe(model, train_rows), profile)


def select_features(
    ts: TrainingSet, split: Split, config: TrainConfig
) -> tuple[FeatureSet, list[GroupDecision]]:
    """Leave out wide categoricals, then the history groups that do not help on validation."""
    features = drop_wide_categoricals(ts.features, split.train, config.max_categories)
    if not config.select_groups:
        return features, []
    if config.reuse_selection is not None:
        reused = config.reuse_selection
        why = f"dropped by the selection on data up to {reused['selected_on']} (reused)"
        return drop_groups(features, reused["dropped_groups"], why), []
    params = dict(config.model_params)
    sampled = config.selection_rows is not None and split.train.size > config.selection_rows
    if sampled and config.selection_learning_rate is not None:
        params["learning_rate"] = config.selection_learning_rate

    def fit_mae(
        Xt: pl.DataFrame, yt: FloatArray, Xv: pl.DataFrame, yv: FloatArray, cat: list[str]
    ) -> float:
        probe = QuantileEta((0.5,), seed=config.seed, **params)
        probe.fit(Xt, yt, categorical=cat, eval_set=(Xv, yv))
        return float(np.abs(probe.predict(Xv)[:, 0] - yv).mean())

    scorer = validation_scorer(
        split, ts.target_s, fit_mae, max_train_rows=config.selection_rows, seed=config.seed
    )
    return select_groups(features, scorer)


def fit_model(
    features: FeatureSet, y: FloatArray, split: Split, config: TrainConfig
) -> tuple[QuantileEta, Window | None]:
    """Train with early stopping on the validation orders, then (``config.refit``) again on
    training + validation orders for the rounds early stopping kept; with
    ``config.reuse_rounds``, train once for those rounds (on the orders the refit would
    learn from).

    Returns:
        The model, and (when refitted) the first fit's raw predictions and actuals on the
        validation window: a backtest for :func:`calibrate_model`.
    """
    X = features.frame.drop("order_id")
    params = {"residual_of": residual_base(features, config), **config.model_params}
    model = QuantileEta(config.quantiles, seed=config.seed, **params)
    if config.reused_rounds is not None:
        rows = np.sort(np.concatenate([split.train, split.valid])) if config.refit else split.train
        rounds = {float(q): int(r) for q, r in config.reused_rounds["per_quantile"].items()}
        return model.fit(X[rows], y[rows], categorical=features.categorical, rounds=rounds), None
    eval_set = (X[split.valid], y[split.valid])
    if config.dask is not None:
        from arrive.training.distributed import fit_on_dask

        fitted = fit_on_dask(
            model, X[split.train], y[split.train], features.categorical, eval_set, config.dask
        )
        return fitted, None
    model.fit(X[split.train], y[split.train], categorical=features.categorical, eval_set=eval_set)
    if not config.refit:
        return model, None
    backtest = (model.predict_raw(X[split.valid]), y[split.valid])
    # The validation orders are the latest the calibration window does not hold: learning
    # from them (for the rounds early stopping chose) brings the model closer to the test.
    seen = np.sort(np.concatenate([split.train, split.valid]))
    return model.refit(X[seen], y[seen]), backtest


def rounds_recipe(config: TrainConfig) -> dict[str, Any]:
    """What boosting rounds depend on besides the data: the quantiles and the model's
    parameters (as JSON keeps them)."""
    recipe = {"quantiles": list(config.quantiles), "model_params": dict(config.model_params)}
    loaded: dict[str, Any] = json.loads(json.dumps(recipe, default=str))
    return loaded


def rounds_record(model: QuantileEta, data_end: str, config: TrainConfig) -> dict[str, Any]:
    """What a model's ``metrics["rounds"]`` keeps: its boosting rounds per quantile, the end
    of the data early stopping chose them on, and the recipe they belong to (a reused
    record, with the version it came from, is carried over as it is)."""
    if config.reused_rounds is not None:
        return dict(config.reused_rounds)
    per_quantile = {str(q): r for q, r in model.rounds_.items()}
    return {"per_quantile": per_quantile, "chosen_on": data_end, "recipe": rounds_recipe(config)}


BUILTIN_FEATURE = "travel_estimate_s"


def residual_base(features: FeatureSet, config: TrainConfig) -> tuple[str, ...]:
    """The features the model predicts the residual over (``config.residual``): the
    provider's travel time, then the built-in estimate; none without provider history."""
    if not config.residual or PROVIDER_FEATURE not in features.names:
        return ()
    return tuple(name for name in (PROVIDER_FEATURE, BUILTIN_FEATURE) if name in features.names)


def calibrate_model(
    model: QuantileEta,
    features: FeatureSet,
    y: FloatArray,
    split: Split,
    backtest: Window | None = None,
) -> QuantileEta:
    """Calibrate on the window just before the test period; with a ``backtest`` (the first
    fit on the validation window), the scales pool both windows: each is the period right
    after its model's training orders, as the test period is for the served model."""
    X = features.frame.drop("order_id")
    return model.calibrate(X[split.calib], y[split.calib], backtest=backtest)


def fit_heuristic(ts: TrainingSet, split: Split, config: TrainConfig) -> HeuristicEta:
    """The baseline: levels chosen from the attributes the data has, on the validation and
    calibration windows (segment tables from the training orders), then fitted on every
    order before the test period (all that the model saw). Both windows, not one: a short
    window can be an untypical period and pick levels that only suit it.

    With ``config.calibrate_heuristic`` the P90's gap is scaled on the calibration window,
    judged by the same levels fitted on the orders before it (training + validation)."""
    orders = ts.orders
    choice = choose_levels(
        orders[split.train],
        orders[np.concatenate([split.valid, split.calib])],
        key_columns(orders),
        min_count=config.heuristic_min_count,
    )

    def fitted(rows: npt.NDArray[np.int64]) -> HeuristicEta:
        return HeuristicEta(
            choice.levels, min_count=config.heuristic_min_count, quantiles=config.quantiles
        ).fit(orders[rows])

    heuristic = fitted(np.concatenate([split.train, split.valid, split.calib]))
    if not config.calibrate_heuristic:
        return heuristic
    before = fitted(np.concatenate([split.train, split.valid]))
    return heuristic.calibrate(orders[split.calib], reference=before)


def _evaluate(
    ts: TrainingSet,
    features: FeatureSet,
    pred: FloatArray,
    quantiles: tuple[float, ...],
    heuristic: HeuristicEta,
    split: Split,
) -> Evaluation:
    """Scores on the test orders of the model's predictions ``pred`` and the heuristic's."""
    test = ts.orders[split.test]
    return evaluate(
        EvalInput(
            y_true_s=ts.target_s[split.test],
            pred_s=pred,
            heuristic_s=heuristic.predict(test),
            quantiles=quantiles,
            created_at=test.get_column("created_at"),
            segments=segments_of(test, features.frame[split.test]),
        )
    )


def segments_of(test: pl.DataFrame, features: pl.DataFrame) -> dict[str, pl.Series]:
    segments = {"local hour": test.get_column("hour").cast(pl.String).str.zfill(2)}
    for column, label in (("market_id", "market"), ("store_category", "store category")):
        if test.get_column(column).null_count() < len(test):
            segments[label] = test.get_column(column)
    if "store_history_count" in features.columns:
        segments["store history"] = _history_bucket(features.get_column("store_history_count"))
    return segments


def _history_bucket(count: pl.Series) -> pl.Series:
    labels = ["new store", "1–9 deliveries", "10–99 deliveries", "100+ deliveries"]
    edges = list(_HISTORY_BUCKETS[1:])
    index = np.searchsorted(edges, count.fill_null(0).to_numpy(), side="right")
    return pl.Series([labels[i] for i in index])


def _metrics(
    evaluation: Evaluation, ts: TrainingSet, split: Split, seconds: float
) -> dict[str, Any]:
    created = ts.orders.get_column("created_at")
    test_created = created[split.test]
    return {
        **metrics_json(evaluation),
        "n_train": int(split.train.size),
        "n_valid": int(split.valid.size),
        "n_calib": int(split.calib.size),
        "calib_days": split.calib_days,
        "split": split.kind,
        "split_label": split.label,
        "data_start": str(created.min()),
        "data_end": str(created.max()),
        "test_start": str(test_created.min()),
        "test_end": str(test_created.max()),
        "train_seconds": round(seconds, 2),
    }


def _feature_schema(features: FeatureSet, local_timezone: str) -> dict[str, Any]:
    return {
        "definitions_hash": features.definitions_hash,
        "local_timezone": local_timezone,
        "features": [
            {
                "name": s.name,
                "entity": s.entity,
                "kind": s.kind,
                "ttl_s": s.ttl_s,
                "description": s.description,
            }
            for s in features.specs
        ],
        "left_out": features.left_out,
    }


def write_model(directory: Path, bundle: ModelBundle) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in bundle.to_files().items():
        (directory / name).write_bytes(content)


def _report(
    run_dir: Path,
    *,
    data_dir: Path,
    ts: TrainingSet,
    features: FeatureSet,
    model: QuantileEta,
    pred: FloatArray,
    evaluation: Evaluation,
    split: Split,
    metrics: Mapping[str, Any],
    decisions: list[GroupDecision],
) -> None:
    """The run's HTML report; ``pred``: the model's predictions of the test orders."""
    test = ts.orders[split.test]
    X = features.frame.drop("order_id")[split.test]
    sample = pl.DataFrame(
        {
            "created_at": test.get_column("created_at"),
            "y_true_s": ts.target_s[split.test],
            "p50_s": pred[:, 0],
            "p90_s": pred[:, -1],
        }
    )
    if "distance_km" in X.columns:
        sample = sample.with_columns(X.get_column("distance_km"))
    context = {
        "split": split.label,
        "data range": f"{metrics['data_start']} → {metrics['data_end']}",
        "test period": f"{metrics['test_start']} → {metrics['test_end']}",
        "orders": " · ".join(
            f"{part} {metrics[f'n_{part}']:,}" for part in ("train", "valid", "calib", "test")
        ),
        "training time": f"{metrics['train_seconds']} s",
        "local time zone": ts.local_timezone,
    }
    write_report(
        run_dir / "report.html",
        title="Arrive — ETA model evaluation",
        evaluation=evaluation,
        feature_importance=model.feature_importance(),
        sample=sample,
        context=context,
        notes=_notes(features, decisions),
        timezone=ts.local_timezone,
        run_details=run_details(model, features, data_dir),
        loss_curves=getattr(model, "curves_", {}),
    )


def _notes(features: FeatureSet, decisions: list[GroupDecision]) -> list[str]:
    notes = [_left_out_note(name, why, features.names) for name, why in features.left_out.items()]
    notes += [
        f"feature group '{d.group}': validation MAE {d.mae_with_s / 60:.3f} min with, "
        f"{d.mae_without_s / 60:.3f} min without → {'kept' if d.kept else 'dropped'}"
        for d in decisions
    ]
    return notes


def _left_out_note(name: str, why: str, used: list[str]) -> str:
    """A left-out feature or group, saying when a used feature has a similar name (the
    weather *observations* group is left out while the orders' own weather column is used)."""
    if not name.endswith(" (group)"):
        return f"feature '{name}' not used: {why}"
    group = name.removesuffix(" (group)")
    text = f"feature group '{group}' (built from {group} events) not built: {why}"
    alike = [feature for feature in used if group.lower() in feature.lower()]
    if alike:
        text += (
            f"; the used feature(s) {', '.join(repr(f) for f in alike)} come from the orders'"
            " own columns instead"
        )
    return text


def run_details(model: QuantileEta, features: FeatureSet, data_dir: Path) -> dict[str, str]:
    """How a model was made, for its report: parameters, boosting rounds, library
    versions, data and feature-definition hashes."""
    from importlib.metadata import version

    summary_path = data_dir / "import_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    rounds = ", ".join(f"P{q * 100:g} {_rounds(b):,}" for q, b in model.boosters_.items())
    return {
        "model parameters": json.dumps(model.get_params(), sort_keys=True),
        "boosting rounds kept (early stopping on the validation slice)": rounds,
        "features used": f"{len(features.names)}: {', '.join(features.names)}",
        "feature definitions hash": features.definitions_hash,
        "source data sha256": str(summary.get("input", {}).get("sha256", "not recorded")),
        "source data mapping": str(summary.get("mapping") or summary.get("source") or "n/a"),
        "versions": f"arrive {arrive.__version__} · python {platform.python_version()} · "
        + " · ".join(f"{name} {version(name)}" for name in ("lightgbm", "numpy", "polars")),
    }


def _rounds(booster: Any) -> int:
    """Rounds the booster predicts with: its best iteration when early stopping set one."""
    best = int(booster.best_iteration)
    return best if best > 0 else int(booster.num_trees())


def metadata_of(
    bundle: ModelBundle, metrics: Mapping[str, Any], ts: TrainingSet, config: TrainConfig
) -> dict[str, Any]:
    """What a version is registered with: ``metrics``, the data range, the recipe (features,
    their definitions, the model's parameters, quantiles, code version) and the lineage."""
    return {
        "metrics": dict(metrics),
        "data_range": {"start": metrics["data_start"], "end": metrics["data_end"]},
        "features": bundle.model.features_,
        "definitions_hash": bundle.definitions_hash,
        "params": bundle.model.get_params(),
        "quantiles": list(config.quantiles),
        "code_version": arrive.__version__,
        "local_timezone": ts.local_timezone,
        **({"lineage": dict(config.lineage)} if config.lineage else {}),
    }


def register(
    registry: ModelRegistry,
    bundle: ModelBundle,
    metrics: Mapping[str, Any],
    ts: TrainingSet,
    config: TrainConfig,
) -> str:
    """Check ``bundle``'s files in a child process and register them with ``metrics``,
    the data range and the lineage; return the version.

    Raises:
        ModelIntegrityError: the files fail their check (nothing is registered).
    """
    metadata = metadata_of(bundle, metrics, ts, config)
    files = bundle.to_files()
    check = check_files(files)
    if not check.ok:
        raise ModelIntegrityError(
            f"the trained model fails its check, not registered: {check.reason}"
        )
    return registry.register(files, metadata).version
