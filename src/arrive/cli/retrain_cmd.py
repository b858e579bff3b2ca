"""``arrive retrain``: validate, train, compare with production, register, roll out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from arrive.cli.options import registry_option
from arrive.cli.progress import progress
from arrive.clock import SleepingClock, SystemClock
from arrive.errors import ArriveError, ConfigError
from arrive.registry.local import LocalRegistry

if TYPE_CHECKING:
    from arrive.training.retrain import FinalFitPolicy, GateRule, RetrainSettings

logger = logging.getLogger(__name__)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Where a run on an event archive writes the archive as a data directory (in --runs).
ARCHIVE_DATA = "archive-data"


@click.command("retrain")
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@registry_option("Model registry: production is read here, the candidate registered here.")
@click.option(
    "--runs",
    "runs_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".arrive/retrain"),
    show_default=True,
    help="Directory of the runs (one folder each: training report, outcome.json) and the lock.",
)
@click.option("--window-days", default=56, show_default=True, help="Train on the last N days.")
@click.option(
    "--margin",
    default=0.01,
    show_default=True,
    help="Share by which the candidate's P50 MAE must beat production's.",
)
@click.option(
    "--gate",
    "gate_rule",
    type=click.Choice(["better", "non-regression"]),
    default="better",
    show_default=True,
    help="How a refresh of production's own recipe (same features, parameters, window, code; "
    "newer data) is judged: better, by --margin; non-regression, served unless worse than "
    "production by more than --max-regression. A changed recipe is always judged by --margin.",
)
@click.option(
    "--max-regression",
    default=0.01,
    show_default=True,
    help="With --gate non-regression: most a refresh's P50 MAE may exceed production's (a share).",
)
@click.option(
    "--max-coverage-loss",
    default=0.01,
    show_default=True,
    help="With --gate non-regression: most a refresh's P90 coverage may lie further outside "
    "the promotion gate's band [0.875, 0.925] than production's (a share; 1: not checked).",
)
@click.option(
    "--segment-bound",
    default=0.05,
    show_default=True,
    help="Most a segment's P50 MAE may be worse than production's.",
)
@click.option(
    "--min-compare-orders",
    default=200,
    show_default=True,
    help="Fewest recent orders neither model saw, for a comparison.",
)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rollout plan (TOML, docs/rollout.md) of a better candidate; default plan without.",
)
@click.option("--no-rollout", is_flag=True, help="Register a better candidate, start no rollout.")
@click.option(
    "--final-fit",
    type=click.Choice(["before-window", "all", "evaluated", "held-out"]),
    default="before-window",
    show_default=True,
    help="before-window: a candidate that wins is trained again up to the data's last "
    "calibration window and calibrated on it before it is registered (its test figures stay "
    "the evaluated fit's); all: trained again on every order, with the shift and scales "
    "before-window found; evaluated: the evaluated fit (training + validation orders) is "
    "registered, no second fit; held-out: the model of a run without a final fit (training "
    "orders only) is registered (docs/retraining.md).",
)
@click.option(
    "--test-days",
    type=click.IntRange(min=1),
    help="Test period: the orders of the data's last N days (e.g. 1 for a daily run, whose "
    "comparison with production uses the newest day) instead of the latest 15 %.",
)
@click.option(
    "--reselect-days",
    default=7,
    show_default=True,
    help="Reuse production's feature-group selection and boosting rounds while they were "
    "chosen on data ending at most N days before this data's end (no selection probes, and "
    "the trees trained once for those rounds instead of early-stopped again); 0: select "
    "and early-stop on every run.",
)
@click.option(
    "--every",
    metavar="DURATION",
    help="Run again every DURATION (e.g. 24h, 30m) until stopped, instead of once.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="With --every: serve arrive_retrain_* metrics on this port (/metrics).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Interface.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def command(
    data_dir: Path,
    registry_root: Path,
    runs_dir: Path,
    window_days: int,
    margin: float,
    gate_rule: GateRule,
    max_regression: float,
    max_coverage_loss: float,
    segment_bound: float,
    min_compare_orders: int,
    plan_file: Path | None,
    no_rollout: bool,
    final_fit: FinalFitPolicy,
    test_days: int | None,
    reselect_days: int,
    every: str | None,
    metrics_port: int | None,
    metrics_host: str,
    quiet: bool,
) -> None:
    """Retrain on DATA_DIR (a data directory, or the event archive of `arrive ingest
    --archive`, read at each run; days unchanged since the last run are
    kept from its conversion): validate the data (a block stops here,
    production untouched), train and calibrate on the last --window-days, compare with
    production on recent orders neither model saw (overall and per segment), register
    with lineage, and start a rollout when the candidate passes (better by --margin, or
    with --gate non-regression a refresh no worse than production; the first model
    becomes production).

    Idempotent: a run on data already trained on registers nothing. Exit code 2 when
    validation blocks; with --every, each run's outcome is a metric instead.
    """
    from arrive.rollout.plan import RolloutPlan, plan_from_toml
    from arrive.training.pipeline import TrainConfig
    from arrive.training.retrain import RetrainSettings
    from arrive.training.split import SplitFractions

    settings = RetrainSettings(
        window_days=window_days,
        margin=margin,
        gate_rule=gate_rule,
        max_regression=max_regression,
        max_coverage_loss=max_coverage_loss,
        segment_bound=segment_bound,
        min_compare_orders=min_compare_orders,
        rollout=not no_rollout,
        plan=plan_from_toml(plan_file) if plan_file else RolloutPlan(),
        final_fit=final_fit,
        reselect_days=reselect_days,
        train=TrainConfig(fractions=SplitFractions(test_days=test_days)),
    )
    if metrics_port is not None and every is None:
        raise ConfigError("--metrics-port: only with --every (a single run exits at once)")
    args = (data_dir, LocalRegistry(registry_root), runs_dir, settings, quiet)
    if every is None:
        _once(*args)
        return
    _loop(*args, _seconds(every), SystemClock(), metrics_port, metrics_host)


def _once(
    data_dir: Path, registry: LocalRegistry, runs_dir: Path, settings: RetrainSettings, quiet: bool
) -> str:
    from arrive.ingest.archive import data_dir_of
    from arrive.training.retrain import RetrainBlocked, retrain

    data_dir = data_dir_of(data_dir, runs_dir / ARCHIVE_DATA)
    clock = SystemClock()
    with progress(quiet=quiet) as bar:
        task = bar.add_task("retrain", total=None)
        outcome = retrain(
            data_dir,
            registry,
            runs_dir,
            clock,
            settings,
            on_step=lambda step: bar.update(task, description=f"retrain: {step}"),
        )
    version = f"version {outcome.version}; " if outcome.version else ""
    click.echo(f"retrain {outcome.status}: {outcome.reason} ({version}run {outcome.run_dir})")
    if outcome.status == "blocked":
        raise RetrainBlocked(f"{data_dir}: {outcome.reason}")
    return outcome.status


def _loop(
    data_dir: Path,
    registry: LocalRegistry,
    runs_dir: Path,
    settings: RetrainSettings,
    quiet: bool,
    period_s: float,
    clock: SleepingClock,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    from arrive.monitoring.ingest_metrics import serve_metrics
    from arrive.monitoring.retrain_metrics import RetrainMetrics
    from arrive.training.retrain import RetrainBlocked, RetrainBusy

    metrics = RetrainMetrics()
    if metrics_port is not None:
        serve_metrics(metrics, metrics_port, metrics_host)
    while True:
        started = clock.monotonic()
        try:
            status = _once(data_dir, registry, runs_dir, settings, quiet)
        except RetrainBusy as exc:
            status = "skipped"
            click.echo(f"retrain skipped: {exc}", err=True)
        except RetrainBlocked as exc:
            status = "blocked"
            click.echo(f"retrain blocked: {exc}", err=True)
        except ArriveError as exc:
            status = "failed"
            click.echo(f"retrain failed: {exc}", err=True)
        metrics.record(status, clock.now().timestamp())
        clock.sleep_until(started + period_s)


def _seconds(text: str) -> float:
    unit = text[-1:] if text[-1:] in _UNITS else ""
    number = text[: -len(unit)] if unit else text
    try:
        value = float(number) * _UNITS.get(unit, 1)
    except ValueError:
        raise ConfigError(f"--every {text!r}: not a duration (e.g. 24h, 30m, 3600)") from None
    if value <= 0:
        raise ConfigError(f"--every {text!r}: must be > 0")
    return value
