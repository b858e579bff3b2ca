"""``arrive backfill``: offline features of a date range, written partitioned by day."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import click

from arrive.cli.progress import progress
from arrive.cli.train_cmd import dask_client


@click.command("backfill")
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--from",
    "first",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="First local day of the range (the marketplace's zone).",
)
@click.option(
    "--to",
    "last",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Last local day of the range (included).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the features: date=YYYY-MM-DD/part-0.parquet per day, _manifest.json.",
)
@click.option(
    "--dask",
    "dask_address",
    default=None,
    metavar="ADDRESS|local",
    help="Compute on a Dask cluster: a scheduler address, or 'local' for a local cluster.",
)
@click.option("--quiet", is_flag=True, help="No progress display.")
def command(
    data_dir: Path,
    first: datetime,
    last: datetime,
    out: Path,
    dask_address: str | None,
    quiet: bool,
) -> None:
    """Compute the point-in-time features of DATA_DIR's orders (a data directory, or an
    `arrive ingest --archive` event archive) created from --from to --to
    and write them by day under --out (a day written again is replaced whole).

    Run it after changing a feature definition, so that retraining sees the new
    definition on old data. The values equal those training computes.
    """
    from arrive.ingest.archive import data_dir_of
    from arrive.training.backfill import backfill

    with (
        tempfile.TemporaryDirectory(prefix="arrive-backfill-") as work,
        progress(quiet=quiet) as bar,
        dask_client(dask_address) as client,
    ):
        task = bar.add_task("features", total=None)
        result = backfill(
            data_dir_of(data_dir, Path(work) / "data"),
            out,
            first.date(),
            last.date(),
            client,
            on_day=lambda done, total: bar.update(task, completed=done, total=total),
        )
    click.echo(
        f"{result.rows:,} orders over {len(result.days)} day(s), "
        f"{len(result.features)} features (definitions {result.definitions_hash[:12]}) "
        f"→ {out}"
    )
