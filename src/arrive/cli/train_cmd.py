"""``arrive train``: build features, train, calibrate, evaluate, report and register."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from arrive.cli.options import name_values, registry_option
from arrive.cli.progress import progress
from arrive.datadir import check_data_dir
from arrive.errors import ConfigError
from arrive.registry.local import LocalRegistry
from arrive.training.pipeline import STEPS, TrainConfig, TrainResult, run_training
from arrive.training.split import CalibDays, SplitFractions

_console = Console(highlight=False)
_CALIB_DAYS_DEFAULT = "auto"


@click.command("train")
@click.argument("data_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--out",
    "run_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Run directory: metrics.json, report.html, model/.",
)
@click.option(
    "--split",
    type=click.Choice(["time", "random"]),
    default="time",
    show_default=True,
    help="time: train on earlier orders, test on the latest. random: only to compare "
    "with published work (leaks the future).",
)
@click.option(
    "--test-frac",
    type=float,
    default=SplitFractions.test,
    show_default=True,
    help="Share of the orders in the test period (the latest), in (0, 1).",
)
@click.option(
    "--valid-frac",
    type=float,
    default=SplitFractions.valid,
    show_default=True,
    help="Share of the orders for early stopping and feature selection, in (0, 1).",
)
@click.option(
    "--calib-frac",
    type=float,
    default=SplitFractions.calib,
    show_default=True,
    help="Share of the orders for calibrating the quantiles, in (0, 1); the three shares "
    "must sum to less than 1 (training gets the rest). Given alone, it sets --calib-days off.",
)
@click.option(
    "--calib-days",
    default=_CALIB_DAYS_DEFAULT,
    show_default=True,
    metavar="N|auto|off",
    help="Calibrate on the last N whole days (N × 24 h) before the test period; auto: a "
    "seventh of the days of history, 1 to 7; off: on --calib-frac of the orders.",
)
@click.option(
    "--refit",
    is_flag=True,
    help="After early stopping, train again on training + validation orders; the P90 "
    "scale then pools the first fit's validation window with the calibration window.",
)
@click.option(
    "--residual",
    is_flag=True,
    help="Predict the residual over the provider's travel time (travel_time_provider_s; "
    "the built-in estimate where an order has none), when the data has provider history.",
)
@click.option("--quantiles", default="0.5,0.9", show_default=True, help="Quantiles to predict.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A model parameter, e.g. --param num_leaves=127 (repeatable).",
)
@click.option(
    "--no-selection", is_flag=True, help="Keep every feature group (no validation-based selection)."
)
@click.option(
    "--dask",
    "dask_address",
    default=None,
    metavar="ADDRESS|local",
    help="Train on a Dask cluster: a scheduler address, or 'local' for a local cluster.",
)
@registry_option("Where to register the model.")
@click.option("--no-register", is_flag=True, help="Do not register the model.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def command(
    data_dir: Path,
    run_dir: Path,
    split: str,
    test_frac: float,
    valid_frac: float,
    calib_frac: float,
    calib_days: str,
    refit: bool,
    residual: bool,
    quantiles: str,
    seed: int,
    params: tuple[str, ...],
    no_selection: bool,
    dask_address: str | None,
    registry_root: Path,
    no_register: bool,
    quiet: bool,
) -> None:
    """Train a calibrated P50/P90 model on DATA_DIR (from `arrive import` or `arrive simulate`)."""
    check_data_dir(data_dir)
    if calib_days == _CALIB_DAYS_DEFAULT and _given(click.get_current_context(), "calib_frac"):
        calib_days = "off"
    config = TrainConfig(
        split=split,  # type: ignore[arg-type]
        fractions=SplitFractions(
            test=test_frac, valid=valid_frac, calib=calib_frac, calib_days=_calib_days(calib_days)
        ),
        refit=refit,
        residual=residual,
        quantiles=_quantiles(quantiles),
        seed=seed,
        select_groups=not no_selection,
        model_params=name_values(params, "--param"),
    )
    registry = None if no_register else LocalRegistry(registry_root)
    result = _run(data_dir, run_dir, config, registry, dask_address, quiet)
    _summary(result)


def _run(
    data_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    registry: LocalRegistry | None,
    dask_address: str | None,
    quiet: bool,
) -> TrainResult:
    with progress(quiet=quiet) as bar, dask_client(dask_address) as client:
        task = bar.add_task("training", total=len(STEPS))
        if client is not None:
            config = TrainConfig(**{**config.__dict__, "dask": client})

        def step(name: str) -> None:
            bar.update(task, completed=STEPS.index(name), description=name)

        result = run_training(data_dir, run_dir, config, registry, on_step=step)
        bar.update(task, completed=len(STEPS), description="done")
    return result


class _NoClient:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def dask_client(address: str | None) -> Any:
    """A Dask client for ``--dask`` (a context manager; nothing without an address)."""
    if address is None:
        return _NoClient()
    from arrive.training.distributed import connect

    return connect(address)


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


def _calib_days(text: str) -> CalibDays:
    if text in ("auto", "off"):
        return None if text == "off" else "auto"
    try:
        days = int(text)
    except ValueError:
        days = 0
    if days < 1:
        raise ConfigError(
            f"--calib-days: expected a whole number of days >= 1, auto or off, got {text!r}"
        )
    return days


def _quantiles(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--quantiles: not a comma-separated list of numbers: {text!r}") from None
    if 0.5 not in values or 0.9 not in values:
        raise ConfigError("--quantiles: must include 0.5 and 0.9 (P50 and the P90 promise)")
    return values


def _summary(result: TrainResult) -> None:
    m = result.metrics
    table = Table(title=f"Trained on a {m['split']} split", show_header=True)
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("heuristic", justify="right")
    table.add_row(
        "MAE of P50", f"{m['mae_s'] / 60:.2f} min", f"{m['heuristic_mae_s'] / 60:.2f} min"
    )
    table.add_row("P90 coverage", f"{m['coverage_p90']:.1%}", f"{m['heuristic_coverage_p90']:.1%}")
    table.add_row("late rate (> P90)", f"{m['late_rate']:.1%}", f"{m['heuristic_late_rate']:.1%}")
    table.add_row("crossings", str(m["crossings"]), "")
    table.add_row("test orders", f"{m['n_test']:,}", "")
    _console.print(table)
    registered = f", registered as version {result.version}" if result.version else ""
    _console.print(f"report: {result.run_dir / 'report.html'}{registered}")
