"""``arrive models``: inspect the model registry, promote, roll back, clean up.

Every subcommand works on a :class:`~arrive.registry.local.LocalRegistry`
(``--registry``, default ``.arrive/registry``). Mistakes (an unknown version or
alias, a refused promotion, a corrupted artifact, a model that fails its check) end
in one line and exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from rich.console import Console
from rich.table import Table

from arrive.cli.options import registry_option
from arrive.errors import ModelIntegrityError
from arrive.models.check import DEFAULT_TIMEOUT_S, check_files
from arrive.models.quantile import META_FILE
from arrive.registry.base import ALIASES, AliasChange, LoadedModel, ModelVersion
from arrive.registry.local import LocalRegistry
from arrive.registry.promotion import promote
from arrive.rollout.state import AuditEntry
from arrive.rollout.store import rollout_store

F = TypeVar("F", bound=Callable[..., Any])

_METRICS = ("mae_s", "coverage_p90", "late_rate")


_registry_option = registry_option()


def _alias_option(default: str) -> Callable[[F], F]:
    return click.option(
        "--alias",
        type=click.Choice(ALIASES),
        default=default,
        show_default=True,
        help="Alias to change.",
    )


@click.group("models")
def command() -> None:
    """Inspect and manage registered models."""


@command.command("list")
@_registry_option
def list_versions(registry_root: Path) -> None:
    """List versions with their aliases and key metrics."""
    registry = LocalRegistry(registry_root)
    versions = registry.versions()
    if not versions:
        Console().print(f"no models registered in {registry.root}")
        return
    table = Table("version", "created (UTC)", "aliases", *_METRICS, "files")
    for column in table.columns[:3]:
        column.no_wrap = True
    for record in versions:
        metrics = [_metric(record.metrics.get(name)) for name in _METRICS]
        table.add_row(
            record.version,
            _when(record.created_at),
            ", ".join(record.aliases),
            *metrics,
            str(len(record.files)),
        )
    Console().print(table)


@command.command("show")
@click.argument("ref")
@_registry_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
def show(ref: str, registry_root: Path, as_json: bool) -> None:
    """Show a version (REF: a version number or an alias): files, metadata, alias history."""
    registry = LocalRegistry(registry_root)
    record = registry.get(ref)
    history = _history_of(registry, record.version)
    if as_json:
        document = {**msgspec.to_builtins(record), "alias_history": msgspec.to_builtins(history)}
        click.echo(msgspec.json.format(msgspec.json.encode(document)))
        return
    console = Console()
    aliases = f" ({', '.join(record.aliases)})" if record.aliases else ""
    console.print(f"version {record.version}{aliases}, registered {_when(record.created_at)} UTC")
    console.print(_files_table(record))
    console.print_json(data=record.metadata)
    console.print(_history_table(history) if history else "never held an alias")


def _history_of(registry: LocalRegistry, version: str) -> list[AliasChange]:
    changes = [c for alias in ALIASES for c in registry.alias_history(alias)]
    mine = [c for c in changes if version in (c.version, c.previous)]
    return sorted(mine, key=lambda c: c.changed_at)


def _files_table(record: ModelVersion) -> Table:
    table = Table("file", "bytes")
    table.add_column("sha256", overflow="fold")
    for name, entry in record.files.items():
        table.add_row(name, str(entry.size_bytes), entry.sha256)
    return table


def _history_table(history: list[AliasChange]) -> Table:
    table = Table("changed (UTC)", "alias", "from", "to", "kind", "reason")
    for change in history:
        table.add_row(
            _when(change.changed_at),
            change.alias,
            change.previous or "-",
            change.version or "-",
            change.kind,
            change.reason,
        )
    return table


@command.command("history")
@_registry_option
def history(registry_root: Path) -> None:
    """What was live when: every alias change and every rollout step, oldest first."""
    registry = LocalRegistry(registry_root)
    rows = [_alias_row(c) for alias in ALIASES for c in registry.alias_history(alias)]
    rows += [_rollout_row(e) for e in rollout_store(registry).audit()]
    if not rows:
        Console().print(f"nothing has been live yet in {registry.root}")
        return
    table = Table("at (UTC)", "what", "from", "to", "reason")
    for row in sorted(rows, key=lambda r: r[0]):
        table.add_row(_when(row[0]), *row[1:])
    Console().print(table)


def _alias_row(change: AliasChange) -> tuple[datetime, str, str, str, str]:
    what = change.alias if change.kind == "set" else f"{change.alias} ({change.kind})"
    return (change.changed_at, what, change.previous or "-", change.version or "-", change.reason)


def _rollout_row(entry: AuditEntry) -> tuple[datetime, str, str, str, str]:
    return (entry.at, f"rollout {entry.rollout}", entry.source, entry.target, entry.reason)


@command.command("promote")
@click.argument("ref")
@_alias_option("production")
@click.option("--force", is_flag=True, help="Promote even if the gate refuses.")
@click.option("--reason", default=None, help="Why (kept in the alias history).")
@_registry_option
def promote_version(
    ref: str, alias: str, force: bool, reason: str | None, registry_root: Path
) -> None:
    """Point an alias at version REF, if the promotion gate allows it."""
    registry = LocalRegistry(registry_root)
    done = promote(registry, ref, alias, force=force, reason=reason)
    if done.forced:
        warn = Console(stderr=True, highlight=False)
        warn.print(f"warning: forced past the gate: {'; '.join(done.decision.reasons)}")
    was = f" (was {done.change.previous})" if done.change.previous else ""
    Console(highlight=False).print(f"{alias} -> version {done.change.version}{was}")


@command.command("rollback")
@_alias_option("production")
@click.option("--reason", default="rollback", show_default=True, help="Why (kept in history).")
@_registry_option
def rollback(alias: str, reason: str, registry_root: Path) -> None:
    """Point an alias back at the version that held it before."""
    change = LocalRegistry(registry_root).rollback(alias, reason=reason)
    target = f"version {change.version}" if change.version else "no version (cleared)"
    Console(highlight=False).print(f"{alias} rolled back: {change.previous} -> {target}")


@command.command("gc")
@click.option("--keep", type=click.IntRange(min=0), required=True, help="Newest versions kept.")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@_registry_option
def gc(keep: int, dry_run: bool, registry_root: Path) -> None:
    """Delete old versions, keeping the newest N, aliased ones and rollback targets."""
    doomed = LocalRegistry(registry_root).gc(keep, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    listed = ", ".join(doomed) if doomed else "nothing"
    Console(highlight=False).print(f"{verb} {listed}")


@command.command("verify")
@click.argument("refs", nargs=-1)
@_registry_option
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1.0),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Seconds the model check of one version may take.",
)
def verify(refs: tuple[str, ...], registry_root: Path, timeout_s: float) -> None:
    """Check REFS (default: all versions): every artifact against its checksum, then the
    model itself in a child process (it must parse and reproduce its reference
    predictions on the probe batch stored at registration)."""
    registry = LocalRegistry(registry_root)
    targets = list(refs) or [v.version for v in registry.versions()]
    failures = []
    console = Console(highlight=False, soft_wrap=True)
    for ref in targets:
        try:
            loaded = registry.open(ref)
        except ModelIntegrityError as exc:
            failures.append(str(exc))
            console.print(f"{ref}: FAILED: {exc}")
            continue
        failure = _verify_model(console, loaded, timeout_s)
        if failure is not None:
            failures.append(failure)
    if failures:
        raise ModelIntegrityError(f"{len(failures)} of {len(targets)} failed: {failures[0]}")


def _verify_model(console: Console, loaded: LoadedModel, timeout_s: float) -> str | None:
    """Print the model check's outcome of ``loaded``; the failure line, if it failed."""
    version, count = loaded.version.version, len(loaded.files)
    if META_FILE not in loaded.files:
        console.print(f"version {version}: {count} files ok (no {META_FILE}: checksums only)")
        return None
    check = check_files(loaded.files, timeout_s=timeout_s)
    if not check.ok:
        console.print(f"version {version}: FAILED: {check.reason}")
        return f"version {version}: {check.reason}"
    console.print(f"version {version}: {count} files ok, model {check.status}: {check.reason}")
    return None


def _metric(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:.4g}"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
