"""The orders a bulk run reads: an iterable of mappings, a Polars or pandas DataFrame,
or a Parquet or CSV file; and the results it writes: JSON Lines, CSV or Parquet."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import polars as pl

from arrive.client.encoding import FrameOrders, MappingOrders, Orders
from arrive.errors import InputFileError

Source = Iterable[Mapping[str, Any]] | pl.DataFrame | str | os.PathLike[str]

RESULT_SCHEMA: Final = {
    "row": pl.Int64(),
    "order_id": pl.String(),
    "status": pl.String(),  # ok, rejected (the order does not fit the API) or error
    "error": pl.String(),
    "request_id": pl.String(),
    "p50_s": pl.Float64(),
    "p90_s": pl.Float64(),
    "promised_at": pl.String(),
    "model_version": pl.String(),
    "variant": pl.String(),
    "fallback": pl.String(),
}
OUTPUT_SUFFIXES: Final = (".jsonl", ".csv", ".parquet")


def read_orders(source: Source) -> Orders:
    """The orders of ``source``, in input order: a frame's (or a file's) as columns,
    mappings as they are.

    Raises:
        InputFileError: a path that is missing, unreadable or of another format.
    """
    if isinstance(source, pl.DataFrame):
        return FrameOrders(source)
    if isinstance(source, str | os.PathLike):
        return FrameOrders(read_file(Path(source)))
    if _is_pandas(source):
        return FrameOrders(pl.from_pandas(source))
    return MappingOrders([row if isinstance(row, dict) else dict(row) for row in source])


def read_file(path: Path) -> pl.DataFrame:
    """A Parquet or CSV file of orders (CSV dates parsed)."""
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        if path.suffix == ".csv":
            return pl.read_csv(path, try_parse_dates=True, infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputFileError(f"{path}: cannot be read ({exc})") from None
    raise InputFileError(f"{path}: expected a .parquet or .csv file of orders")


def check_output(path: Path) -> None:
    """Refuse an output path of an unknown format before any work."""
    if path.suffix not in OUTPUT_SUFFIXES:
        raise InputFileError(
            f"{path}: the output must end with one of {', '.join(OUTPUT_SUFFIXES)}"
        )


def read_results(path: Path) -> pl.DataFrame:
    """A results file written by :func:`write_results`."""
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        if path.suffix == ".csv":
            return pl.read_csv(path, schema=RESULT_SCHEMA)
        return pl.read_ndjson(path, schema=RESULT_SCHEMA)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputFileError(f"{path}: not a results file of a bulk run ({exc})") from None


def write_results(frame: pl.DataFrame, path: Path) -> None:
    """``frame`` to ``path`` (format by suffix), atomically: a crash leaves the old file."""
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        frame.write_parquet(tmp)
    elif path.suffix == ".csv":
        frame.write_csv(tmp)
    else:
        frame.write_ndjson(tmp)
    tmp.replace(path)


def _is_pandas(source: object) -> bool:
    return type(source).__module__.startswith("pandas") and hasattr(source, "to_dict")
