"""One retraining run: validate → train on a rolling window → compare with production on
the same recent orders → register with lineage → start a rollout when it passes.

:func:`retrain` is idempotent: its key is the checksum of the inputs (the orders table
and every event file) with the window and the code version, so a second run on the same
data finds the version the first registered and trains nothing. A lock file keeps two
runs apart. Registration is the registry's own atomic step: a run killed before it
leaves nothing registered, and the next run starts over.

The comparison is honest about what each model saw: it uses the candidate's test
orders (never trained on) created after the end of production's data (never seen by
production either). It needs ``min_compare_orders`` of them; with fewer, the candidate is
registered and no rollout starts. A candidate is served when its P50 MAE beats
production's by ``margin`` (``gate_rule="better"``, the default) or, with
``gate_rule="non-regression"`` and production's own recipe (the same features,
definitions, parameters, quantiles, code version and window: a daily refresh on newer
data), when its P50 MAE is no worse than production's by more than ``max_regression`` and
its P90 coverage no further outside the promotion gate's band than production's by more
than ``max_coverage_loss``; either way no segment may be worse by more than ``segment_bound``.

What is compared and what is served (``RetrainSettings.final_fit``, see
:mod:`arrive.training.final_fit`): the candidate is evaluated as trained on every order
before its calibration window, and the model registered once it has won (or, the first
model, passed the promotion gate) is that recipe trained again at the end of the data
(``"before-window"``, the default: up to the data's last calibration window;
``"all"``: on every order), its registered metrics the evaluated fit's with a ``final_fit`` entry; a
candidate that does not win is registered as evaluated. ``"evaluated"``: the evaluated
fit itself is registered, winner or not (no second fit: half the training time of a
winning run, trees that stop learning a calibration window and a test period before the
data's end; with ``TrainConfig.fractions.test_days`` = 1 a daily run's test period is its
newest day). ``"held-out"``: the evaluated model of a run without a final fit (trained on
the orders before its validation window, calibrated with the validation window pooled) is
registered, winner or not.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, get_args

import numpy as np
import polars as pl

import arrive
from arrive import datadir
from arrive.clock import Clock
from arrive.errors import (
    ConfigError,
    ModelNotFound,
    PromotionRefused,
    RolloutRefused,
    UserError,
)
from arrive.evaluation import EvalInput, Evaluation, evaluate
from arrive.models.artifact import ModelBundle
from arrive.registry import ModelRegistry, promote
from arrive.registry.promotion import PromotionPolicy, check_promotion
from arrive.rollout.control import Rollouts
from arrive.rollout.plan import RolloutPlan
from arrive.training import validation
from arrive.training.final_fit import final_fit
from arrive.training.pipeline import (
    TrainConfig,
    TrainResult,
    metadata_of,
    register,
    rounds_recipe,
    run_training,
    segments_of,
    write_model,
)

Status = Literal[
    "promoted", "rolled_out", "registered", "unchanged", "blocked", "skipped", "failed"
]
OUTCOME_FILE: Final = "outcome.json"
LOCK_FILE: Final = ".retrain.lock"
PROFILE_KEY: Final = "data_profile"
FinalFitPolicy = Literal["before-window", "all", "evaluated", "held-out"]
_SECOND_FIT: Final = ("before-window", "all")
"""The policies that train a winner again before it is registered."""
GateRule = Literal["better", "non-regression"]
#: What makes a recipe: a candidate with these equal to production's (the lineage's
#: ``window_days`` too) is a refresh of production on newer data.
RECIPE_KEYS: Final = ("features", "definitions_hash", "params", "quantiles", "code_version")


class RetrainBusy(UserError):
    """Another retraining run holds the lock."""


class RetrainBlocked(UserError):
    """Validation blocked training: production is untouched."""


@dataclass(frozen=True, slots=True)
class RetrainSettings:
    """What a retraining run does (every field has a default).

    Attributes:
        window_days: train on the orders of the data's last ``window_days`` days.
        margin: the candidate's P50 MAE must beat production's by this share.
        segment_bound: no segment's P50 MAE may be worse than production's by more.
        min_compare_orders: fewest unseen orders for a comparison.
        min_segment_orders: segments with fewer orders are not judged.
        rollout: start a rollout of a better candidate (else only register it).
        plan: the rollout's plan.
        train: how the candidate is trained (its window is ``window_days``).
        gate: the promotion gate the first model passes to become production.
        final_fit: ``"before-window"`` or ``"all"``: evaluate the recipe (trees on every
            order before the calibration window) and register a winner trained again up to
            the data's last calibration window, or on every order; ``"evaluated"``:
            register that evaluated fit itself; ``"held-out"``: register the evaluated
            model of a run without a final fit (see the module docstring).
        reselect_days: production's feature-group selection (``metrics["selection"]``)
            and boosting rounds (``metrics["rounds"]``, for the same quantiles and model
            parameters) are reused while they were chosen on data ending at most this many
            days before this run's data: the selection's probes (most of a large retrain's
            training time) are not trained again, and the trees are trained once for
            production's rounds instead of early-stopped and trained again; older,
            missing or 0: the run selects and early-stops on its own data.
        gate_rule: how a candidate of production's own recipe (a daily refresh: the same
            features, definitions, parameters and window on newer data) is judged:
            ``"better"``, by ``margin``; ``"non-regression"``, accepted unless worse than
            production by more than ``max_regression``. A changed recipe is always judged
            by ``"better"``.
        max_regression: with ``"non-regression"``: how much higher the refresh's P50 MAE
            may be (a share of production's).
        max_coverage_loss: with ``"non-regression"``: how much further outside the
            promotion gate's P90 band (``gate``) the refresh's P90 coverage may lie than
            production's (a share of the orders; 1: not checked).
    """

    window_days: int = 56
    margin: float = 0.01
    segment_bound: float = 0.05
    min_compare_orders: int = 200
    min_segment_orders: int = 100
    rollout: bool = True
    plan: RolloutPlan = field(default_factory=RolloutPlan)
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: PromotionPolicy = field(default_factory=PromotionPolicy)
    final_fit: FinalFitPolicy = "before-window"
    reselect_days: int = 7
    gate_rule: GateRule = "better"
    max_regression: float = 0.01
    max_coverage_loss: float = 0.01

    def __post_init__(self) -> None:
        for name, kind in (("final_fit", FinalFitPolicy), ("gate_rule", GateRule)):
            if getattr(self, name) not in get_args(kind):
                raise ConfigError(
                    f"retrain {name}: expected one of {', '.join(get_args(kind))}, "
                    f"got {getattr(self, name)!r}"
                )
        if not 0 <= self.max_regression < 1:
            raise ConfigError("retrain max_regression: must be in [0, 1)")
        if not 0 <= self.max_coverage_loss <= 1:
            raise ConfigError("retrain max_coverage_loss: must be in [0, 1]")
        if self.window_days < 1:
            raise ConfigError("retrain window_days: must be >= 1")
        if self.reselect_days < 0:
            raise ConfigError("retrain reselect_days: must be >= 0")
        if not 0 <= self.margin < 1 or not 0 <= self.segment_bound < 1:
            raise ConfigError("retrain margin and segment_bound: must be in [0, 1)")
        if self.min_compare_orders < 1 or self.min_segment_orders < 1:
            raise ConfigError("retrain min_compare_orders and min_segment_orders: must be >= 1")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: ``status``, why, the version it registered or found, the
    figures behind the decision, and the seconds each step took (by the run's clock)."""

    status: Status
    reason: str
    run_dir: str
    version: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    validation: list[dict[str, Any]] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)


def retrain(
    data_dir: Path,
    registry: ModelRegistry,
    runs_dir: Path,
    clock: Clock,
    settings: RetrainSettings | None = None,
    on_step: Callable[[str], None] = lambda _: None,
) -> Outcome:
    """One run (see the module docstring); its :class:`Outcome` is also written to
    ``RUN/outcome.json``.

    Raises:
        RetrainBusy: another run holds the lock.
    """
    config = settings or RetrainSettings()
    runs_dir.mkdir(parents=True, exist_ok=True)
    with _locked(runs_dir / LOCK_FILE):
        inputs = input_checksums(data_dir)
        key = run_key(inputs, config)
        run_dir = runs_dir / f"{clock.now():%Y%m%dT%H%M%SZ}-{key[:10]}"
        steps = _StepTimer(clock, on_step)
        outcome = _run(data_dir, registry, run_dir, inputs, key, clock, config, steps.start)
        outcome = replace(outcome, step_seconds=steps.stop())
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(run_dir / OUTCOME_FILE, json.dumps(asdict(outcome), indent=2))
        return outcome


class _StepTimer:
    """Seconds of each step named to ``on_step``: a step lasts until the next one starts."""

    def __init__(self, clock: Clock, on_step: Callable[[str], None]) -> None:
        self._clock, self._on_step = clock, on_step
        self._seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def start(self, step: str) -> None:
        self.stop()
        self._current = (step, self._clock.monotonic())
        self._on_step(step)

    def stop(self) -> dict[str, float]:
        if self._current is not None:
            step, started = self._current
            elapsed = self._clock.monotonic() - started
            self._seconds[step] = round(self._seconds.get(step, 0.0) + elapsed, 3)
            self._current = None
        return dict(self._seconds)


def input_checksums(data_dir: Path) -> dict[str, str]:
    """The SHA-256 of each input file (the orders table, every event file), by its path
    in ``data_dir``: read once per run, for the run's key and its lineage."""
    events = sorted((data_dir / datadir.EVENTS_DIR).glob("*/*.parquet"))
    return {
        str(path.relative_to(data_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in [data_dir / datadir.ORDERS_FILE, *events]
    }


def run_key(inputs: Mapping[str, str], settings: RetrainSettings) -> str:
    """The checksum of a run's inputs (:func:`input_checksums`), the window and the code
    version."""
    digest = hashlib.sha256()
    for name, checksum in inputs.items():
        digest.update(name.encode())
        digest.update(bytes.fromhex(checksum))
    digest.update(f"window={settings.window_days};code={arrive.__version__}".encode())
    return digest.hexdigest()


def _run(
    data_dir: Path,
    registry: ModelRegistry,
    run_dir: Path,
    inputs: Mapping[str, str],
    key: str,
    clock: Clock,
    settings: RetrainSettings,
    on_step: Callable[[str], None],
) -> Outcome:
    found = _version_with_key(registry, key)
    if found is not None:
        return Outcome(
            "unchanged", f"already trained on this data: version {found}", str(run_dir), found
        )
    on_step("validate")
    production = _production(registry)
    reference = _reference(production)
    orders = datadir.read_orders(data_dir)
    checked = validation.validate(orders, datadir.local_timezone(data_dir), reference)
    findings = [asdict(f) for f in checked.findings]
    if checked.blocked:
        blocking = "; ".join(
            f"{f.check}: {f.message}" for f in checked.findings if f.severity == "block"
        )
        return Outcome(
            "blocked", f"validation blocked training: {blocking}", str(run_dir), validation=findings
        )
    lineage = {
        "run_key": key,
        "data_dir": str(data_dir),
        "window_days": settings.window_days,
        "inputs": dict(inputs),
        "validation": findings,
        PROFILE_KEY: json.loads(checked.profile.to_json()),
        "trained_at": clock.now().isoformat(),
    }
    reuse = reusable_selection(production, orders, settings.reselect_days)
    rounds = reusable_rounds(production, orders, settings)
    config = replace(train_config(settings, lineage, reuse), reuse_rounds=rounds)
    result = run_training(data_dir, run_dir, config, None, on_step)
    verdict = _verdict(registry, result, production, settings)
    final = verdict.serve and settings.final_fit in _SECOND_FIT
    version, metrics = _register(
        registry, result, config, run_dir, on_step, final=final, every=settings.final_fit == "all"
    )
    done = _outcome_of(str(run_dir), version, findings)
    outcome = _act(registry, version, verdict, settings, done)
    if not final:
        return outcome
    return replace(outcome, reason=f"{outcome.reason}; {final_fit_text(metrics['final_fit'])}")


def _register(
    registry: ModelRegistry,
    result: TrainResult,
    config: TrainConfig,
    run_dir: Path,
    on_step: Callable[[str], None],
    *,
    final: bool,
    every: bool,
) -> tuple[str, dict[str, Any]]:
    """Register the evaluated model, or (``final``) its final fit, which then also
    replaces the evaluated model in the run's folder; return the version and metrics."""
    assert result.bundle is not None
    assert result.training_set is not None
    bundle, metrics = result.bundle, result.metrics
    if final:
        on_step("final fit")
        fitted = final_fit(result, config, every_order=every)
        bundle, metrics = fitted.bundle, fitted.metrics
        write_model(run_dir / "model", bundle)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return register(registry, bundle, metrics, result.training_set, config), metrics


def final_fit_text(described: Mapping[str, Any]) -> str:
    """One sentence on a registered final fit (its ``metrics["final_fit"]``)."""
    trained = f"registered as its final fit: trained on the orders up to {described['train_end']}"
    if "calibrated_by" in described:
        calibrated = (
            f"its shift and scales found on the last {described['n_calib']:,} orders by the "
            "same recipe trained on the orders before them"
        )
    else:
        calibrated = f"calibrated on the {described['n_calib']:,} orders after them"
    return f"{trained}, {calibrated}; the test figures are the evaluated fit's"


def train_config(
    settings: RetrainSettings,
    lineage: Mapping[str, Any],
    reuse: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """How a run trains its candidate: ``settings.train`` on the rolling window (with the
    selection ``reuse`` when given), and with a final fit the evaluated recipe (trees on
    training + validation orders for the rounds early stopping chose, calibrated on the
    calibration window alone)."""
    config = replace(
        settings.train, window_days=settings.window_days, lineage=lineage, reuse_selection=reuse
    )
    if settings.final_fit != "held-out":
        return replace(config, refit=True, pool_backtest=False)
    return config


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What the run decided before registering: serve the candidate (promote the first
    model, roll out a better one) or only register it, and why."""

    serve: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)
    first: bool = False


def _verdict(
    registry: ModelRegistry,
    result: TrainResult,
    production: Mapping[str, Any] | None,
    settings: RetrainSettings,
) -> _Verdict:
    if production is None:
        gate = check_promotion(result.metrics, None, settings.gate)
        return _Verdict(gate.allowed, "; ".join(gate.reasons), first=True)
    compared = compare(registry, result, production, settings)
    if isinstance(compared, str):
        return _Verdict(False, compared)
    return _decide(*compared)


def _decide(figures: dict[str, Any], failures: list[str]) -> _Verdict:
    """The verdict of a comparison (:func:`compare`), its reason naming the rule."""
    judged = _rule_text(figures)
    if figures["rule"] == "non-regression":
        passed, failed = "no worse than production", "worse than production"
    else:
        passed, failed = "better than production", "not better than production"
    if failures:
        return _Verdict(False, f"{failed}{judged}: " + "; ".join(failures), figures)
    return _Verdict(True, passed + judged, figures)


def _rule_text(figures: Mapping[str, Any]) -> str:
    """How the candidate was judged, when it differs from what was asked: a changed
    recipe judged by "better" under ``gate_rule="non-regression"``."""
    changed = figures.get("recipe_changed")
    if not changed:
        return ""
    return f" (its recipe differs from production's in {', '.join(changed)}: judged by margin)"


def _act(
    registry: ModelRegistry,
    version: str,
    verdict: _Verdict,
    settings: RetrainSettings,
    done: Callable[..., Outcome],
) -> Outcome:
    figures = verdict.figures
    if verdict.first:
        return _first(registry, version, settings.gate, done)
    if not verdict.serve:
        return done("registered", verdict.reason, figures)
    if not settings.rollout:
        return done("registered", f"{verdict.reason}; rollouts are off (--no-rollout)", figures)
    try:
        started = Rollouts(registry).start(version, settings.plan, actor="retrain")
    except (RolloutRefused, ModelNotFound) as exc:
        return done("registered", f"{verdict.reason}, but the rollout was refused: {exc}", figures)
    return done("rolled_out", f"{verdict.reason}: rollout {started.id} started", figures)


def _first(
    registry: ModelRegistry, version: str, gate: PromotionPolicy, done: Callable[..., Outcome]
) -> Outcome:
    """No production yet: the first model becomes production if the promotion gate's
    own checks (calibration) pass."""
    try:
        reason = "retrain: the first model, nothing to compare with"
        promote(registry, version, reason=reason, policy=gate)
    except PromotionRefused as exc:
        return done("registered", f"no production yet, and the promotion gate refused: {exc}")
    return done("promoted", "no production yet: the first model became production")


def _outcome_of(
    run_dir: str, version: str, findings: list[dict[str, Any]]
) -> Callable[..., Outcome]:
    def make(status: Status, reason: str, figures: dict[str, Any] | None = None) -> Outcome:
        return Outcome(status, reason, run_dir, version, figures or {}, findings)

    return make


def compare(
    registry: ModelRegistry,
    result: TrainResult,
    production: Mapping[str, Any],
    settings: RetrainSettings,
) -> tuple[dict[str, Any], list[str]] | str:
    """Candidate against production on the candidate's test orders created after
    production's data ended: the figures, and the rules the candidate fails (none: it
    passes; :func:`gate_rule_for` says by which rule). A string says why no comparison
    could be made."""
    ts, split, bundle = result.training_set, result.split, result.bundle
    assert ts is not None
    assert split is not None
    assert bundle is not None
    seen_until = datetime.fromisoformat(production["data_range"]["end"])
    test = ts.orders.with_row_index("_i")[split.test]
    unseen = test.filter(pl.col("created_at") > seen_until).get_column("_i").to_numpy()
    if unseen.size < settings.min_compare_orders:
        return (
            f"only {unseen.size} test orders after production's data "
            f"(needs {settings.min_compare_orders}): no comparison, no rollout"
        )
    old = ModelBundle.from_files(registry.open(production["version"]).files)
    built = ts.features.frame  # every feature built, before the candidate's selection
    missing = [n for n in old.model.features_ if n not in built.columns]
    if missing:
        return f"production's features {', '.join(missing)} are not built any more: no comparison"
    frame = built[unseen]
    rows = ts.orders[unseen]
    new_eval = _evaluation(bundle, bundle, frame, rows, ts.target_s[unseen], result)
    old_eval = _evaluation(old, bundle, frame, rows, ts.target_s[unseen], result)
    config = train_config(settings, {"window_days": settings.window_days})
    ours = recipe_of(metadata_of(bundle, result.metrics, ts, config))
    rule, changed = gate_rule_for(ours, production, settings)
    figures, failures = _judge(new_eval, old_eval, settings, rule)
    return figures | ({"recipe_changed": changed} if changed else {}), failures


def recipe_of(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A version's recipe (:data:`RECIPE_KEYS`, ``params`` without ``n_jobs``, and the
    lineage's ``window_days``), as its registered metadata stores it."""
    recipe = {key: metadata.get(key) for key in RECIPE_KEYS}
    recipe["params"] = {k: v for k, v in (recipe["params"] or {}).items() if k != "n_jobs"}
    recipe["window_days"] = metadata.get("lineage", {}).get("window_days")
    return dict(json.loads(json.dumps(recipe, default=str)))


def gate_rule_for(
    candidate: Mapping[str, Any], production: Mapping[str, Any], settings: RetrainSettings
) -> tuple[GateRule, list[str]]:
    """The rule a candidate of recipe ``candidate`` (:func:`recipe_of`) is judged by against
    ``production`` (its registered metadata), and what differs between their recipes:
    ``settings.gate_rule`` for a refresh of production's recipe, "better" otherwise."""
    if settings.gate_rule == "better":
        return "better", []
    theirs = recipe_of(production)
    changed = [key for key, value in candidate.items() if theirs.get(key) != value]
    return ("better" if changed else "non-regression"), changed


def _evaluation(
    scored: ModelBundle,
    candidate: ModelBundle,
    frame: pl.DataFrame,
    rows: pl.DataFrame,
    y: np.ndarray[Any, Any],
    result: TrainResult,
) -> Evaluation:
    return evaluate(
        EvalInput(
            y_true_s=y,
            pred_s=scored.model.predict(frame.select(scored.model.features_)),
            heuristic_s=candidate.heuristic.predict(rows),
            quantiles=scored.model.quantiles_,
            created_at=rows.get_column("created_at"),
            segments=segments_of(rows, frame),
        )
    )


def _judge(
    new: Evaluation, old: Evaluation, settings: RetrainSettings, rule: GateRule = "better"
) -> tuple[dict[str, Any], list[str]]:
    """The figures of the comparison and the rules the candidate fails under ``rule``
    (P50 MAE, with "non-regression" P90 coverage too; every segment either way)."""
    figures: dict[str, Any] = {
        "rule": rule,
        "orders": new.model.n,
        "candidate_mae_s": new.model.mae_s,
        "production_mae_s": old.model.mae_s,
        "candidate_p90_coverage": new.model.quantiles[-1].coverage,
        "production_p90_coverage": old.model.quantiles[-1].coverage,
        "segments": [],
    }
    ours, theirs = new.model.mae_s / 60, old.model.mae_s / 60
    failures = []
    if rule == "better" and ours > theirs * (1 - settings.margin):
        failures.append(
            f"P50 MAE {ours:.2f} min against production's {theirs:.2f} min "
            f"(needs {settings.margin:.0%} better)"
        )
    if rule == "non-regression":
        failures += _regressions(figures, settings)
    failures += _segment_failures(new, old, settings, figures["segments"])
    return figures, failures


def _segment_failures(
    new: Evaluation, old: Evaluation, settings: RetrainSettings, changes: list[dict[str, Any]]
) -> list[str]:
    """Segments (of ``min_segment_orders`` or more) whose P50 MAE is worse than
    production's by more than ``segment_bound``; each judged segment's change is appended
    to ``changes``."""
    failures = []
    for kind, rows in new.segments.items():
        theirs = {row.value: row for row in old.segments.get(kind, ())}
        for row in rows:
            other = theirs.get(row.value)
            if other is None or row.n < settings.min_segment_orders:
                continue
            change = row.model.mae_s / other.model.mae_s - 1
            changes.append({"kind": kind, "value": row.value, "n": row.n, "change": change})
            if change > settings.segment_bound:
                failures.append(
                    f"{kind} {row.value}: P50 MAE {change:+.1%} against production "
                    f"(bound {settings.segment_bound:+.0%})"
                )
    return failures


def _regressions(figures: Mapping[str, Any], settings: RetrainSettings) -> list[str]:
    """A refresh's failures under "non-regression": its P50 MAE more than
    ``max_regression`` above production's, its P90 coverage more than
    ``max_coverage_loss`` further outside the promotion gate's band than production's."""
    bound, failures = settings.max_regression, []
    ours, theirs = figures["candidate_mae_s"] / 60, figures["production_mae_s"] / 60
    if ours > theirs * (1 + bound):
        failures.append(
            f"P50 MAE {ours:.2f} min against production's {theirs:.2f} min "
            f"({ours / theirs - 1:+.1%}, bound +{bound:.0%})"
        )
    low, high = settings.gate.coverage_p90_min, settings.gate.coverage_p90_max
    cover, other = figures["candidate_p90_coverage"], figures["production_p90_coverage"]
    outside = [max(low - c, c - high, 0.0) for c in (cover, other)]
    if outside[0] > outside[1] + settings.max_coverage_loss:
        failures.append(
            f"P90 coverage {cover:.1%} against production's {other:.1%}: further outside "
            f"[{low:.1%}, {high:.1%}] by more than {settings.max_coverage_loss * 100:g} points"
        )
    return failures


def _production(registry: ModelRegistry) -> dict[str, Any] | None:
    try:
        version = registry.get("production")
    except ModelNotFound:
        return None
    return {"version": version.version, **version.metadata}


def reusable_selection(
    production: Mapping[str, Any] | None, orders: pl.DataFrame, days: int
) -> dict[str, Any] | None:
    """Production's feature-group selection, with the version it came from, when it was
    made on data ending at most ``days`` days before the end of ``orders``; else None."""
    return _recent_record(production, orders, days, "selection", "selected_on")


def reusable_rounds(
    production: Mapping[str, Any] | None, orders: pl.DataFrame, settings: RetrainSettings
) -> dict[str, Any] | None:
    """Production's boosting rounds, with the version they came from, when early stopping
    chose them on data ending at most ``settings.reselect_days`` days before the end of
    ``orders`` and for this run's recipe (quantiles and model parameters); else None."""
    record = _recent_record(production, orders, settings.reselect_days, "rounds", "chosen_on")
    if record is None or record.get("recipe") != rounds_recipe(settings.train):
        return None
    return record


def _recent_record(
    production: Mapping[str, Any] | None, orders: pl.DataFrame, days: int, key: str, on: str
) -> dict[str, Any] | None:
    """Production's ``metrics[key]`` with the version it came from, when its date ``on``
    is at most ``days`` days before the end of ``orders``; else None."""
    record = (production or {}).get("metrics", {}).get(key)
    if days == 0 or record is None:
        return None
    assert production is not None
    data_end = orders.get_column("created_at").max()
    assert isinstance(data_end, datetime)
    if data_end - datetime.fromisoformat(record[on]) > timedelta(days=days):
        return None
    return {**record, "from_version": record.get("from_version", production["version"])}


def _reference(production: Mapping[str, Any] | None) -> validation.DataProfile | None:
    profile = (production or {}).get("lineage", {}).get(PROFILE_KEY)
    if profile is None:
        return None
    return validation.DataProfile.from_json(json.dumps(profile).encode())


def _version_with_key(registry: ModelRegistry, key: str) -> str | None:
    for version in registry.versions():
        if version.metadata.get("lineage", {}).get("run_key") == key:
            return version.version
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RetrainBusy(f"another retraining run holds {path} ({holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
