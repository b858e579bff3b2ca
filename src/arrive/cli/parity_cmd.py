"""``arrive parity``: prove the online features equal the offline ones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from arrive.cli.progress import progress
from arrive.features.online.parity import ParityReport, run_parity


@click.command("parity")
@click.argument("data_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--sample", default=1000, show_default=True, help="Orders compared.")
@click.option("--seed", default=0, show_default=True, help="Sampling seed.")
@click.option("--start", type=click.DateTime(), help="Sample orders created from (UTC).")
@click.option("--end", type=click.DateTime(), help="Replay and sample before (UTC).")
@click.option(
    "--store",
    default="memory",
    show_default=True,
    help="memory, redis://HOST:PORT/DB or redis+cluster://HOST:PORT,...[?prefix=P]",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(
    data_dir: Path,
    sample: int,
    seed: int,
    start: datetime | None,
    end: datetime | None,
    store: str,
    quiet: bool,
) -> None:
    """Replay DATA_DIR's event log through the online path and compare every feature,
    at sampled order-creation times, with the offline builder.

    Exits 1 when any feature differs beyond its declared tolerance.
    """
    from arrive.store.urls import open_store

    with progress(quiet=quiet) as bars:
        task = bars.add_task("replaying and comparing", total=None)
        report = run_parity(
            data_dir,
            sample=sample,
            seed=seed,
            start=_utc(start),
            end=_utc(end),
            store=open_store(store, "--store"),
            on_progress=lambda done, total: bars.update(task, completed=done, total=total),
        )
    Console(highlight=False).print(_table(report))
    if report.mismatches:
        raise SystemExit(1)


def _utc(when: datetime | None) -> datetime | None:
    return None if when is None else when.replace(tzinfo=UTC)


def _table(report: ParityReport) -> Table:
    table = Table(
        title=f"parity: {report.orders:,} orders, {report.events:,} events replayed, "
        f"{report.mismatches:,} mismatches"
    )
    for column in ("feature", "compared", "mismatches", "tolerance", "examples"):
        table.add_column(column)
    for f in report.features:
        table.add_row(
            f.name, f"{f.compared:,}", str(f.mismatches), f"{f.tolerance:g}", "; ".join(f.examples)
        )
    return table
