"""``arrive rollout``: start, inspect, pause, resume, abort or promote a model rollout.

The rollout is kept with the registry (``--registry``, default ``.arrive/registry``).
A refused command (no such version, already production, a failing check, a rollout
already active, another command won the race) ends in one line and exit code 2.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from rich.console import Console
from rich.table import Table

from arrive.cli.options import registry_option
from arrive.registry.base import ModelRegistry
from arrive.registry.local import LocalRegistry
from arrive.rollout.control import CHECK_TIMEOUT_S, Rollouts, check_version
from arrive.rollout.plan import UNIT_KEYS, RolloutPlan, plan_from_options, plan_from_toml
from arrive.rollout.state import AuditEntry, Rollout

F = TypeVar("F", bound=Callable[..., Any])


_registry_option = registry_option("Registry directory (the rollout is kept there).")


def _common(function: F) -> F:
    """``--registry`` and ``--actor``: the options of every command that changes the rollout."""
    actor = click.option("--actor", help="Who, for the audit log [default: your user name].")
    return _registry_option(actor(function))


def _rollouts(registry_root: Path, timeout_s: float = CHECK_TIMEOUT_S) -> Rollouts:
    def verify(registry: ModelRegistry, version: str) -> str | None:
        return check_version(registry, version, timeout_s=timeout_s)

    return Rollouts(LocalRegistry(registry_root), verify=verify)


def _actor(actor: str | None) -> str:
    return actor if actor else getpass.getuser()


@click.group("rollout")
def command() -> None:
    """Roll a model out safely: shadow, then a canary ramp, then production."""


@command.command("start")
@click.argument("version")
@click.option("--plan", "plan_file", type=click.Path(path_type=Path), help="Plan (TOML).")
@click.option("--steps", help="Canary steps in percent, e.g. 5,25,50,100 [default].")
@click.option("--shadow-minutes", type=float, help="Shadow phase length [default: 60].")
@click.option("--min-orders", type=int, help="Joined orders a step needs [default: 500].")
@click.option("--min-minutes", type=float, help="Minutes a step lasts at least [default: 30].")
@click.option("--unit", type=click.Choice(UNIT_KEYS), help="Assignment unit [default: customer].")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1.0),
    default=CHECK_TIMEOUT_S,
    show_default=True,
    help="Seconds the candidate's model check may take.",
)
@_common
def start(
    version: str,
    plan_file: Path | None,
    steps: str | None,
    shadow_minutes: float | None,
    min_orders: int | None,
    min_minutes: float | None,
    unit: str | None,
    timeout_s: float,
    registry_root: Path,
    actor: str | None,
) -> None:
    """Start rolling out VERSION against production (plan from --plan or the options)."""
    given = [steps, shadow_minutes, min_orders, min_minutes, unit]
    if plan_file is not None and any(v is not None for v in given):
        raise click.UsageError("--plan: give a plan file or plan options, not both")
    plan = (
        plan_from_toml(plan_file)
        if plan_file is not None
        else plan_from_options(
            steps=steps,
            shadow_minutes=shadow_minutes,
            min_orders=min_orders,
            min_minutes=min_minutes,
            unit=unit,
        )
    )
    rollout = _rollouts(registry_root, timeout_s).start(version, plan, actor=_actor(actor))
    Console(highlight=False).print(
        f"rollout {rollout.id}: version {rollout.candidate} against production "
        f"{rollout.control}, now {rollout.label}"
    )


@command.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@_registry_option
def status(as_json: bool, registry_root: Path) -> None:
    """Show the current (or last) rollout and its audit log."""
    rollouts = _rollouts(registry_root)
    rollout = rollouts.status()
    entries = [] if rollout is None else [e for e in rollouts.audit() if e.rollout == rollout.id]
    if as_json:
        document = {
            "rollout": None if rollout is None else msgspec.to_builtins(rollout),
            "share": None if rollout is None else rollout.share,
            "state": None if rollout is None else rollout.label,
            "audit": msgspec.to_builtins(entries),
        }
        click.echo(msgspec.json.format(msgspec.json.encode(document)))
        return
    console = Console(highlight=False)
    if rollout is None:
        console.print(f"no rollout in {rollouts.registry!r}")
        return
    console.print(_summary(rollout))
    console.print(_plan_line(rollout.plan))
    console.print(audit_table(entries))


def _summary(rollout: Rollout) -> Table:
    table = Table("rollout", "candidate", "control", "state", "candidate share", "revision")
    table.add_row(
        rollout.id,
        rollout.candidate,
        rollout.control,
        rollout.label,
        f"{rollout.share:.0%}",
        str(rollout.revision),
    )
    return table


def _plan_line(plan: RolloutPlan) -> str:
    steps = "/".join(f"{s:g}" for s in plan.steps)
    return (
        f"plan: shadow {plan.shadow_minutes:g} min, steps {steps} %, each >= "
        f"{plan.min_orders} orders and {plan.min_minutes:g} min, unit {plan.unit}"
    )


def audit_table(entries: list[AuditEntry]) -> Table:
    """The audit entries as a table (also used by ``arrive models history``)."""
    table = Table("at (UTC)", "rollout", "from", "to", "actor", "reason", "figures")
    for entry in entries:
        figures = ", ".join(f"{k}={v:.4g}" for k, v in entry.figures.items())
        table.add_row(
            entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            entry.rollout,
            entry.source,
            entry.target,
            entry.actor,
            entry.reason,
            figures,
        )
    return table


def _simple(name: str, verb: str, help_text: str) -> None:
    @command.command(name, help=help_text)
    @click.option("--reason", default=f"{verb} by hand", show_default=True, help="Why (audited).")
    @_common
    def run(reason: str, registry_root: Path, actor: str | None) -> None:
        rollouts = _rollouts(registry_root)
        act = getattr(rollouts, name)
        rollout: Rollout = act(actor=_actor(actor), reason=reason)
        done = rollout.phase == "done"
        tail = f" (production is now version {rollout.candidate})" if done else ""
        Console(highlight=False).print(f"rollout {rollout.id}: {verb}, now {rollout.label}{tail}")


_simple("pause", "paused", "Hold the rollout at its step: it keeps its split, never advances.")
_simple("resume", "resumed", "Let a paused rollout advance again.")
_simple("abort", "aborted", "Stop the rollout: every unit back to control, production unchanged.")
_simple("promote", "promoted", "Skip the remaining steps: the candidate becomes production now.")
