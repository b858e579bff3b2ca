"""``arrive validate``: is a data directory fit to train the next model on?"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
import msgspec
import polars as pl

from arrive import datadir
from arrive.errors import DataError, InputFileError
from arrive.ingest import archive
from arrive.training.validation import DataProfile, Validation, validate


@click.command("validate")
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--against",
    "against",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Profile of the last accepted run (JSON, from --save-profile): nulls, volume, "
    "target and coverage are compared with it. Without it, the data is compared with "
    "itself.",
)
@click.option(
    "--save-profile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write this data's profile here when nothing blocks (the next run's --against).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def command(data_dir: Path, against: Path | None, save_profile: Path | None, as_json: bool) -> None:
    """Check DATA_DIR's orders (a data directory, or an `arrive ingest --archive` event
    archive) before training: schema, nulls, volume per day, the target's
    distribution, cancellations, duplicates, missing days. Each finding is ok, warn or
    block; any block exits with code 2 and names the checks (docs/retraining.md)."""
    reference = _reference(against) if against is not None else None
    result = validate(_orders(data_dir), _timezone(data_dir), reference)
    click.echo(_json(result) if as_json else "\n".join(result.lines()))
    blocking = [f"{f.check} ({f.message})" for f in result.findings if f.severity == "block"]
    if blocking:
        raise DataError(f"{data_dir}: training blocked by {'; '.join(blocking)}")
    if save_profile is not None:
        save_profile.parent.mkdir(parents=True, exist_ok=True)
        save_profile.write_bytes(result.profile.to_json())


def _orders(data_dir: Path) -> pl.DataFrame:
    """The orders table (only it: the event log is not validated here); of an event
    archive, the orders its events describe."""
    if archive.is_archive(data_dir):
        return archive.orders_of(data_dir)
    if not (data_dir / datadir.ORDERS_FILE).is_file():
        datadir.check_data_dir(data_dir)  # says what the directory is instead
    return datadir.read_orders(data_dir)


def _timezone(data_dir: Path) -> str:
    if archive.is_archive(data_dir):
        return archive.archive_timezone(data_dir)
    return datadir.local_timezone(data_dir)


def _reference(path: Path) -> DataProfile:
    try:
        return DataProfile.from_json(path.read_bytes())
    except OSError as exc:
        raise InputFileError(f"--against {path}: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise InputFileError(f"--against {path}: not a data profile ({exc})") from None


def _json(result: Validation) -> str:
    findings = [asdict(f) for f in result.findings]
    return json.dumps({"worst": result.worst, "findings": findings}, indent=2, default=str)
