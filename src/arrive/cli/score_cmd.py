"""``arrive score``: offline batch scoring of a data directory or a file of orders,
through a service (the bulk client) or locally from a registry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import polars as pl
from rich.console import Console

from arrive import cores
from arrive.errors import ConfigError, InputFileError

_LISTED = 10  # bad rows named on the terminal; every one is in the output


@click.command("score")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file: .parquet, .csv or .jsonl (with --url a re-run resumes it).",
)
@click.option("--url", help="Score through the ETA service at this URL (the bulk client).")
@click.option(
    "--registry",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Score locally with this model registry (INPUT must be a data directory).",
)
@click.option(
    "--model", default="production", show_default=True, help="Version or alias (--registry)."
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    help="Client processes (--url; default 2) or tree threads (--registry; default: the "
    "cores this process may use, or ARRIVE_THREADS).",
)
@click.option(
    "--batch-size",
    default=256,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Orders per request (--url).",
)
@click.option(
    "--compile-backend",
    default="lleaves",
    show_default=True,
    type=click.Choice(["lleaves", "tl2cgen", "none"]),
    help="Trees as the service compiles them (--registry).",
)
@click.option(
    "--compile-cache",
    default=Path(".arrive/compiled"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Compiled trees, by checksum (--registry).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(
    input_path: Path,
    out: Path,
    url: str | None,
    registry: Path | None,
    model: str,
    processes: int | None,
    batch_size: int,
    compile_backend: str,
    compile_cache: Path,
    quiet: bool,
) -> None:
    """Score INPUT's orders: a data directory (its orders table) or a .parquet/.csv file
    of orders (one column per request field: order_id, created_at, store_id, ...; other
    columns are sent as attributes). Writes one row per order, in input order, with a
    status (ok, rejected, error) and the error; exits 1 when any row failed."""
    if (url is None) == (registry is None):
        raise ConfigError("--url, --registry: give exactly one")
    if out.suffix not in (".parquet", ".csv", ".jsonl"):
        raise ConfigError(f"--out {out}: must end with .parquet, .csv or .jsonl")
    console = Console(stderr=True, highlight=False)
    started = time.perf_counter()
    if url is not None:
        frame, lines = _through_service(input_path, out, url, processes or 2, batch_size, quiet)
    else:
        assert registry is not None
        threads = processes or cores.threads()
        frame = _locally(input_path, out, registry, model, threads, compile_backend, compile_cache)
        lines = None
    elapsed = time.perf_counter() - started
    bad = frame.filter(pl.col("status") != "ok")
    console.print(
        f"scored {len(frame):,} orders in {elapsed:.1f} s "
        f"({len(frame) / max(elapsed, 1e-9):,.0f}/s)"
        f", {len(bad):,} failed → {out}"
    )
    for row in bad.head(_LISTED).iter_rows(named=True):
        where = lines[row["row"]] if lines is not None else f"row {row['row'] + 1}"
        console.print(f"  {where}: order {row['order_id']}: {row['status']}: {row['error']}")
    if len(bad) > _LISTED:
        console.print(f"  … and {len(bad) - _LISTED:,} more (see the status column)")
    if len(bad):
        raise click.exceptions.Exit(1)


def _through_service(
    input_path: Path, out: Path, url: str, processes: int, batch_size: int, quiet: bool
) -> tuple[pl.DataFrame, list[str]]:
    from arrive.client import EtaClient, Retry

    orders, lines = _orders(input_path)
    retry = Retry(attempts=20, max_backoff_s=5.0)
    with EtaClient(url, retry=retry, deadline_s=300.0) as client:
        result = client.bulk_predict(
            orders, processes=processes, batch_size=batch_size, out=out, progress=not quiet
        )
    return result.frame, lines


def _orders(input_path: Path) -> tuple[pl.DataFrame, list[str]]:
    """The orders of INPUT and, per row, where it came from (for messages)."""
    from arrive import datadir
    from arrive.client.sources import read_file

    if input_path.is_dir():
        orders = datadir.read_orders(input_path)
        source = orders.get_column("source_line").to_list()
        where = [f"row {i + 1}" if s is None else f"line {s}" for i, s in enumerate(source)]
        return orders, where
    orders = read_file(input_path)
    if "order_id" not in orders.columns:
        raise InputFileError(
            f"{input_path}: no column order_id (the columns: {', '.join(orders.columns)})"
        )
    first = 2 if input_path.suffix == ".csv" else 1  # a CSV's line 1 is its header
    label = "line" if input_path.suffix == ".csv" else "row"
    return orders, [f"{label} {i + first}" for i in range(len(orders))]


def _locally(
    input_path: Path,
    out: Path,
    registry: Path,
    model: str,
    threads: int,
    backend: Any,
    cache: Path,
) -> pl.DataFrame:
    if not input_path.is_dir():
        raise ConfigError(
            f"--registry: {input_path} is not a data directory (features are built from its "
            "event log); score a file of orders through a service with --url"
        )
    from arrive.client.sources import write_results
    from arrive.serving.offline import load_model, order_features, score_frame

    loaded = load_model(registry, model, backend, cache)
    features = order_features(input_path, loaded.features)
    answers = score_frame(loaded, features, threads)
    frame = answers.with_row_index("row").with_columns(
        pl.col("row").cast(pl.Int64), pl.lit(None, pl.String).alias("error")
    )
    write_results(frame, out)
    return frame
