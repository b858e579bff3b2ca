"""``arrive simulate``: write a synthetic marketplace as a data directory."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from rich.progress import TaskID

from arrive.cli.progress import progress
from arrive.datadir import staged
from arrive.errors import ConfigError
from arrive.ingest.simulator import SimulationConfig, simulate, write_simulation
from arrive.ingest.simulator.config import RegimeChange

_DEFAULTS = SimulationConfig()


@click.command("simulate")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory to write (orders.parquet, events/, import_summary.json).",
)
@click.option("--seed", default=_DEFAULTS.seed, show_default=True, help="Random seed.")
@click.option("--days", default=_DEFAULTS.days, show_default=True, help="Simulated days.")
@click.option(
    "--orders-per-day",
    default=_DEFAULTS.orders_per_day,
    show_default=True,
    help="Orders per day over all markets.",
)
@click.option("--markets", default=_DEFAULTS.markets, show_default=True, help="Cities (1-12).")
@click.option(
    "--start",
    default=_DEFAULTS.start.isoformat(),
    show_default=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="First simulated day (UTC).",
)
@click.option(
    "--provider-observations",
    is_flag=True,
    help="Also record what the simulated travel-time vendor (`arrive providers serve-sim`) "
    "answered for each order's store-to-drop leg when its ETA was quoted "
    "(travel_time_observation events), so a model can learn from the provider's time.",
)
@click.option(
    "--travel-slowdown",
    type=click.FloatRange(1, 100),
    metavar="PERCENT",
    help="Drift scenario: from --slowdown-from-day on, every ride takes PERCENT % longer "
    "(a traffic regime change the orders' traffic levels do not show).",
)
@click.option(
    "--slowdown-from-day",
    type=click.IntRange(1),
    metavar="DAY",
    help="With --travel-slowdown: the day it starts (0 = the first simulated day).",
)
@click.option("--force", is_flag=True, help="Replace --out if it is not empty.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(
    out: Path,
    seed: int,
    days: int,
    orders_per_day: int,
    markets: int,
    start: datetime,
    provider_observations: bool,
    travel_slowdown: float | None,
    slowdown_from_day: int | None,
    force: bool,
    quiet: bool,
) -> None:
    """Simulate a delivery marketplace and write it as canonical events.

    Deterministic for a seed. The default is a week of one mid-size city
    (about 112,000 orders).
    """
    config = SimulationConfig(
        seed=seed,
        days=days,
        orders_per_day=orders_per_day,
        markets=markets,
        start=start.date(),
        provider_observations=provider_observations,
        regime_change=_regime(travel_slowdown, slowdown_from_day),
    )
    with staged(out, force=force) as folder, progress(quiet=quiet) as bar:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        simulation = simulate(config, report)
        report("writing", 0, 1)
        write_simulation(simulation, folder)
        report("writing", 1, 1)
    if not quiet:
        summary = simulation.summary
        click.echo(
            f"{out}: {summary['rows_imported']} orders "
            f"({summary['cancellations']['total']} cancelled), {summary['events_total']} events",
            err=True,
        )


def _regime(slowdown_pct: float | None, day: int | None) -> RegimeChange | None:
    if (slowdown_pct is None) != (day is None):
        raise ConfigError("--travel-slowdown and --slowdown-from-day: give both or neither")
    if slowdown_pct is None or day is None:
        return None
    return RegimeChange(day=day, travel_slowdown=slowdown_pct / 100)
