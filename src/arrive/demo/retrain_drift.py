"""``arrive demo --simulate --retrain daily``: two simulated weeks with a drift in the
middle, walked day by day with a daily ``arrive retrain``.

The marketplace is simulated once, with the simulator's opt-in regime change
(:class:`~arrive.ingest.simulator.config.RegimeChange`: from the drift day on, every ride
takes ``travel_slowdown`` longer). Then the walk: at the end of each day from
``first_retrain_day`` on, the platform has the orders created and finished before that
midnight and the events that happened before it (a data directory of its own), and one
:func:`arrive.training.retrain.retrain` runs on it: validated, trained on its rolling
window, compared with production on recent orders neither model saw, registered, and
rolled out or refused with its reason. The demo has no live traffic to drive a rollout, so
a rollout the retrain starts is taken to 100 % at once (``Rollouts.promote``): the
candidate serves from the next day.

Each day is then scored as it was served: the model that was production during the day
(and its heuristic, and the newest registered model) on the day's delivered orders, with
the point-in-time features built once over the whole log (the same values the day's
service would have read, since every feature only looks back).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive import datadir
from arrive.clock import ManualClock
from arrive.errors import ConfigError, InternalError, ModelNotFound
from arrive.ingest.simulator import SimulationConfig, simulate, write_simulation
from arrive.ingest.simulator.config import RegimeChange
from arrive.models.artifact import ModelBundle
from arrive.registry import LocalRegistry
from arrive.rollout.control import Rollouts
from arrive.training.dataset import TrainingSet, load_training_set
from arrive.training.pipeline import TrainConfig
from arrive.training.retrain import Outcome, RetrainSettings, retrain

RECOVERY_TOLERANCE: Final = 0.05
"""The figure's bound: production's MAE within 5 % of its pre-drift level."""
RECOVERY_DAYS: Final = 2
"""... within this many days of the drift (two daily retrains after it began)."""
ROLLOUT_NOTE: Final = (
    "the demo has no live traffic to drive a rollout: a rollout the retrain starts is "
    "taken to 100 % at once, so the candidate serves from the next day"
)
Step = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DriftScenario:
    """What the drift demo simulates and how it retrains.

    Attributes:
        days: simulated days.
        orders_per_day: orders a day.
        drift_day: the first day of the regime change (0 = the first day); None: the
            middle, ``days // 2``.
        travel_slowdown: how much longer every ride takes from ``drift_day`` on.
        first_retrain_day: days of data before the first retrain (its model, the first,
            becomes production); a retrain runs at the end of every day from then on.
        seed: the simulation's seed.
        retrain: the settings of every daily run (by default those of ``arrive retrain``,
            except that training skips the per-group feature selection, which fits a model
            per feature group: with it, a retrain takes several times as long).
    """

    days: int = 14
    orders_per_day: int = 1_500
    drift_day: int | None = None
    travel_slowdown: float = 0.3
    first_retrain_day: int = 3
    seed: int = 0
    retrain: RetrainSettings = field(
        default_factory=lambda: RetrainSettings(train=TrainConfig(select_groups=False))
    )

    def __post_init__(self) -> None:
        if not 1 <= self.first_retrain_day < self.drift_at < self.days:
            raise ConfigError(
                f"drift demo: needs 1 <= first retrain day ({self.first_retrain_day}) < drift "
                f"day ({self.drift_at}) < days ({self.days})"
            )

    @property
    def drift_at(self) -> int:
        """The drift's first day (0-based)."""
        return self.days // 2 if self.drift_day is None else self.drift_day

    def simulation(self) -> SimulationConfig:
        return SimulationConfig(
            seed=self.seed,
            days=self.days,
            orders_per_day=self.orders_per_day,
            regime_change=RegimeChange(self.drift_at, self.travel_slowdown),
        )


@dataclass(frozen=True)
class Scores:
    """One model's scores on one day's delivered orders."""

    mae_s: float
    p90_coverage: float


@dataclass(frozen=True)
class DayResult:
    """One simulated day: what served it and how well, and the retrain at its end.

    ``production``, ``heuristic`` and ``latest`` (the newest registered model, promoted or
    not) are None on the days before the first model. ``outcome`` is None on the days
    before the first retrain and on the last day.
    """

    day: int
    date: date
    drifted: bool
    orders: int
    mean_duration_s: float
    production_version: str | None
    production: Scores | None
    heuristic: Scores | None
    latest_version: str | None
    latest: Scores | None
    outcome: Outcome | None


@dataclass(frozen=True)
class Recovery:
    """The figure: production's MAE after the drift against its level before.

    Attributes:
        pre_level_s: mean daily MAE of production on the served days before the drift.
        pre_days: those days.
        post_mae_s: production's MAE on each day from the drift on, by day.
        recovered_day: the first day from the drift on whose MAE is within
            :data:`RECOVERY_TOLERANCE` of ``pre_level_s``; None: none is.
        within: recovered no later than :data:`RECOVERY_DAYS` days after the drift began.
        pre_relative: the same level as a share of the mean delivery time (MAE grows with
            the durations themselves; this shows how much of the rise is that).
        post_relative: production's MAE over the mean delivery time, by day.
        recovered_day_relative, within_relative: ``recovered_day`` and ``within`` for the
            relative MAE against ``pre_relative`` (reported beside the figure, which the
            issue states in minutes: neither replaces the other).
    """

    pre_level_s: float
    pre_days: list[int]
    post_mae_s: dict[int, float]
    recovered_day: int | None
    within: bool
    pre_relative: float
    post_relative: dict[int, float]
    drift_day: int
    recovered_day_relative: int | None = None
    within_relative: bool = False

    @property
    def days_to_recover(self) -> int | None:
        return None if self.recovered_day is None else self.recovered_day - self.drift_day


@dataclass(frozen=True)
class DriftDemo:
    """The walk's result: every day, the recovery figure, where things were written."""

    scenario: DriftScenario
    days: list[DayResult]
    recovery: Recovery
    data_dir: Path
    registry_dir: Path
    training_set: TrainingSet
    bundles: dict[str, ModelBundle]


def run_drift_demo(workdir: Path, scenario: DriftScenario, step: Step) -> DriftDemo:
    """Simulate, walk the days with a daily retrain, score each day (see the module
    docstring). ``workdir`` is emptied first; ``step(what, done, total)`` reports progress."""
    shutil.rmtree(workdir, ignore_errors=True)
    full = workdir / "data"
    step("simulating", 0, 1)
    simulation = simulate(scenario.simulation())
    with datadir.staged(full) as folder:
        write_simulation(simulation, folder)
    step("simulating", 1, 1)
    registry = LocalRegistry(workdir / "registry")
    start = scenario.simulation().start_time
    clock = ManualClock(start)
    serving: dict[int, str | None] = {}
    outcomes: dict[int, Outcome] = {}
    # no retrain after the last day: no day is left for its model to serve
    retrain_days = range(scenario.first_retrain_day, scenario.days)
    for done, k in enumerate(retrain_days):
        serving[k - 1] = _production(registry)
        label = f"day {k - 1}/{scenario.days - 1}: retrain"
        step(label, done, len(retrain_days))
        midnight = start + timedelta(days=k)
        clock.set(midnight)
        known = data_until(full, workdir / "days" / f"day-{k - 1:02d}", midnight)
        outcomes[k - 1] = retrain(
            known,
            registry,
            workdir / "runs",
            clock,
            scenario.retrain,
            on_step=_reporter(step, label, done, len(retrain_days)),
        )
        if outcomes[k - 1].status == "rolled_out":
            Rollouts(registry, clock=clock).promote(actor="arrive demo", reason=ROLLOUT_NOTE)
    serving[scenario.days - 1] = _production(registry)
    step("scoring the days", 0, 1)
    demo = _score(workdir, scenario, registry, full, serving, outcomes)
    step("scoring the days", 1, 1)
    return demo


def _reporter(step: Step, label: str, done: int, total: int) -> Callable[[str], None]:
    def report(what: str) -> None:
        step(f"{label}: {what}", done, total)

    return report


def data_until(source: Path, destination: Path, end: datetime) -> Path:
    """What the platform has at ``end``: the orders created and finished before it (an
    order still on its way is not in the table yet) and the events before it."""
    destination.mkdir(parents=True)
    orders = datadir.read_orders(source).filter(
        pl.col("created_at") < end,
        pl.col("delivered_at").is_null() | (pl.col("delivered_at") < end),
    )
    datadir.write_orders(destination, orders)
    events = datadir.scan_events(source).filter(pl.col("event_time") < end).collect()
    datadir.write_events(destination, events)
    summary = source / datadir.SUMMARY_FILE
    (destination / datadir.SUMMARY_FILE).write_bytes(summary.read_bytes())
    return destination


def _production(registry: LocalRegistry) -> str | None:
    try:
        return registry.get("production").version
    except ModelNotFound:
        return None


def _score(
    workdir: Path,
    scenario: DriftScenario,
    registry: LocalRegistry,
    full: Path,
    serving: dict[int, str | None],
    outcomes: dict[int, Outcome],
) -> DriftDemo:
    ts = load_training_set(full)
    bundles = {
        v.version: ModelBundle.from_files(registry.open(v.version).files)
        for v in registry.versions()
    }
    created = ts.orders.get_column("created_at")
    start = scenario.simulation().start_time
    days = []
    for day in range(scenario.days):
        begin = start + timedelta(days=day)
        rows = np.flatnonzero(
            ((created >= begin) & (created < begin + timedelta(days=1))).to_numpy()
        )
        version = serving.get(day)
        latest = _latest_before(outcomes, day)
        days.append(
            DayResult(
                day=day,
                date=begin.date(),
                drifted=day >= scenario.drift_at,
                orders=int(rows.size),
                mean_duration_s=float(ts.target_s[rows].mean()) if rows.size else float("nan"),
                production_version=version,
                production=_model_scores(ts, rows, bundles, version),
                heuristic=_heuristic_scores(ts, rows, bundles, version),
                latest_version=latest,
                latest=_model_scores(ts, rows, bundles, latest),
                outcome=outcomes.get(day),
            )
        )
    return DriftDemo(
        scenario,
        days,
        recovery_of(days, scenario.drift_at),
        full,
        workdir / "registry",
        ts,
        bundles,
    )


def _latest_before(outcomes: dict[int, Outcome], day: int) -> str | None:
    """The newest version a retrain registered (or found) before ``day`` began."""
    found = [o.version for d, o in sorted(outcomes.items()) if d < day and o.version]
    return found[-1] if found else None


def _model_scores(
    ts: TrainingSet,
    rows: npt.NDArray[np.int64],
    bundles: dict[str, ModelBundle],
    version: str | None,
) -> Scores | None:
    if version is None or rows.size == 0:
        return None
    model = bundles[version].model
    missing = [n for n in model.features_ if n not in ts.features.frame.columns]
    if missing:
        raise InternalError(f"version {version}: features {missing} are not built")
    pred = model.predict(ts.features.frame[rows].select(model.features_))
    return _scores(ts.target_s[rows], pred)


def _heuristic_scores(
    ts: TrainingSet,
    rows: npt.NDArray[np.int64],
    bundles: dict[str, ModelBundle],
    version: str | None,
) -> Scores | None:
    if version is None or rows.size == 0:
        return None
    return _scores(ts.target_s[rows], bundles[version].heuristic.predict(ts.orders[rows]))


def _scores(y: npt.NDArray[np.float64], pred: npt.NDArray[np.float64]) -> Scores:
    return Scores(
        mae_s=float(np.abs(pred[:, 0] - y).mean()),
        p90_coverage=float((y <= pred[:, -1]).mean()),
    )


def recovery_of(days: Sequence[DayResult], drift_day: int) -> Recovery:
    """The figure from the days' scores (see :class:`Recovery`).

    Raises:
        InternalError: no served day before the drift, or none from it on.
    """
    pre = [d for d in days if d.production is not None and d.day < drift_day]
    post = [d for d in days if d.production is not None and d.day >= drift_day]
    if not pre or not post:
        raise InternalError("drift demo: no served day before the drift or after it")
    level = float(np.mean([_mae(d) for d in pre]))
    post_mae = {d.day: _mae(d) for d in post}
    recovered = _recovered(level, post_mae)
    relative = float(np.mean([_mae(d) / d.mean_duration_s for d in pre]))
    post_relative = {d.day: _mae(d) / d.mean_duration_s for d in post}
    recovered_relative = _recovered(relative, post_relative)
    return Recovery(
        pre_level_s=level,
        pre_days=[d.day for d in pre],
        post_mae_s=post_mae,
        recovered_day=recovered,
        within=_within(recovered, drift_day),
        pre_relative=relative,
        post_relative=post_relative,
        drift_day=drift_day,
        recovered_day_relative=recovered_relative,
        within_relative=_within(recovered_relative, drift_day),
    )


def _recovered(level: float, by_day: dict[int, float]) -> int | None:
    """The first day whose value is within :data:`RECOVERY_TOLERANCE` of ``level``."""
    bound = level * (1 + RECOVERY_TOLERANCE)
    return next((day for day, value in by_day.items() if value <= bound), None)


def _within(recovered: int | None, drift_day: int) -> bool:
    return recovered is not None and recovered - drift_day <= RECOVERY_DAYS


def _mae(day: DayResult) -> float:
    assert day.production is not None
    return day.production.mae_s


def served_days(demo: DriftDemo) -> Iterator[DayResult]:
    """The days a production model served."""
    return (d for d in demo.days if d.production is not None)


def figures_json(demo: DriftDemo) -> dict[str, Any]:
    """The days and the figure as JSON-ready values (``drift_demo.json``)."""
    rec = demo.recovery
    return {
        "scenario": {
            "days": demo.scenario.days,
            "orders_per_day": demo.scenario.orders_per_day,
            "drift_day": demo.scenario.drift_at,
            "travel_slowdown": demo.scenario.travel_slowdown,
            "first_retrain_day": demo.scenario.first_retrain_day,
            "seed": demo.scenario.seed,
        },
        "recovery": {
            "pre_level_mae_s": rec.pre_level_s,
            "pre_days": rec.pre_days,
            "post_mae_s": {str(k): v for k, v in rec.post_mae_s.items()},
            "recovered_day": rec.recovered_day,
            "days_to_recover": rec.days_to_recover,
            "within_two_days": rec.within,
            "pre_relative_mae": rec.pre_relative,
            "post_relative_mae": {str(k): v for k, v in rec.post_relative.items()},
            "recovered_day_relative": rec.recovered_day_relative,
            "within_two_days_relative": rec.within_relative,
        },
        "days": [_day_json(d) for d in demo.days],
    }


def _day_json(day: DayResult) -> dict[str, Any]:
    def scores(s: Scores | None) -> dict[str, float] | None:
        return None if s is None else {"mae_s": s.mae_s, "p90_coverage": s.p90_coverage}

    outcome = day.outcome
    return {
        "day": day.day,
        "date": day.date.isoformat(),
        "drifted": day.drifted,
        "orders": day.orders,
        "mean_duration_s": day.mean_duration_s,
        "production_version": day.production_version,
        "production": scores(day.production),
        "heuristic": scores(day.heuristic),
        "latest_version": day.latest_version,
        "latest": scores(day.latest),
        "retrain": None
        if outcome is None
        else {
            "status": outcome.status,
            "reason": outcome.reason,
            "version": outcome.version,
            "figures": outcome.figures,
        },
    }
