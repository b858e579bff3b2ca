"""``arrive import``: a delivery CSV → a data directory (orders, events, quarantine, summary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console
from rich.progress import TaskID
from rich.table import Table

from arrive import datadir
from arrive.cli.progress import progress
from arrive.ingest.importers import (
    import_csv,
    load_mapping,
    nothing_imported,
    preset_names,
    write_import,
)

# Stage → (description, unit); the file is read in bytes (a compressed file's, on disk).
_STAGES: Final = {
    "read": ("reading the file", "bytes"),
    "check": ("checking values", "steps"),
    "events": ("building events", "steps"),
    "write": ("writing files", "steps"),
}
_TOP_REASONS: Final = 8


@click.command(name="import", epilog=f"Presets: {', '.join(preset_names())}.")
@click.argument("source")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory to write (orders.parquet, events/, quarantine.csv, import_summary.json).",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists and is not empty.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table.")
def command(source: str, input_path: Path, out: Path, force: bool, quiet: bool) -> None:
    """Import a delivery CSV (plain or gzip) into a data directory.

    SOURCE is a preset name or the path to a mapping TOML file (see docs/mapping.md);
    rows that fail a check go to quarantine.csv with their line and the reason.
    When every row fails, only quarantine.csv is written and the exit code is 2.
    """
    mapping = load_mapping(source)
    with datadir.staged(out, force=force) as stage, _Bars(quiet=quiet) as bars:
        result = import_csv(input_path, mapping, source=source, on_progress=bars)
        write_import(stage, result, on_progress=bars)
    nothing_imported(result, out)
    if not quiet:
        Console(highlight=False).print(_table(result.summary, out))


class _Bars:
    """One progress bar per import stage, shown from the first report on (so an
    error found before any progress prints nothing but its own line)."""

    def __init__(self, *, quiet: bool) -> None:
        self._bar = progress(quiet=quiet)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._tasks:
            self._bar.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._tasks:
            self._bar.start()
        task = self._tasks.get(stage)
        if task is None:
            description, unit = _STAGES.get(stage, (stage, "steps"))
            task = self._tasks[stage] = self._bar.add_task(description, total=total, unit=unit)
        self._bar.update(task, completed=done, total=total)


def _table(summary: dict[str, Any], out: Path) -> Table:
    table = Table(title=f"arrive import: {summary['source']}", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("input", summary["input"]["path"])
    table.add_row("output", str(out))
    table.add_row("rows in", f"{summary['rows_in']:,}")
    table.add_row("imported", f"{summary['rows_imported']:,}")
    table.add_row("quarantined", f"{summary['rows_quarantined']:,}")
    reasons = list(summary["quarantine_by_reason"].items())
    for reason, count in reasons[:_TOP_REASONS]:
        table.add_row("", f"{count:,}  {reason}")
    if len(reasons) > _TOP_REASONS:
        table.add_row("", f"… {len(reasons) - _TOP_REASONS} more reasons in import_summary.json")
    if summary["created_at_min"] is not None:
        table.add_row("created_at", f"{summary['created_at_min']} → {summary['created_at_max']}")
    unknown = summary.get("coordinates_unknown", {})
    if any(unknown.values()):
        counts = ", ".join(f"{end} {count:,}" for end, count in unknown.items())
        table.add_row("unknown points", f"{counts} (declared missing by the mapping)")
    events = ", ".join(f"{kind} {count:,}" for kind, count in summary["events"].items())
    table.add_row("events", events or "none")
    for kind, count in summary["events_not_written"].items():
        table.add_row("", f"{count:,} {kind} not written (its time or a required field is missing)")
    return table
