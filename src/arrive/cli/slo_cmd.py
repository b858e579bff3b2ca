"""``arrive slo``: service-level objectives, turned into Prometheus rules and a Grafana
dashboard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from arrive.errors import ConfigError

_DEFAULTS = "arrive/monitoring/slo.toml, the defaults"


@click.group("slo")
def command() -> None:
    """Service-level objectives (slo.toml), and the Prometheus rules and Grafana dashboard
    made from them."""


def _slo_option(f: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--slo",
        "slo_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="SLO file (TOML) [default: the shipped slo.toml, see docs/slo.md].",
    )(f)


def _out_options(default: str, what: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def decorate(f: Callable[..., None]) -> Callable[..., None]:
        f = click.option(
            "--check",
            is_flag=True,
            help=f"Write nothing; exit 1 when {what} in --out differs from what would be written.",
        )(f)
        return click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path(default),
            show_default=True,
            help=f"Directory {what} is written to.",
        )(f)

    return decorate


@command.command("rules")
@_slo_option
@_out_options("deploy/prometheus", "the rule files")
def rules(slo_file: Path | None, out: Path, check: bool) -> None:
    """Write the recording rules (each objective's error ratios) and the alert rules
    (multi-window burn rates, and alerts on causes, each linking its runbook)."""
    from arrive.monitoring.rules import rule_files
    from arrive.monitoring.slo import load_slo

    config = load_slo(slo_file)
    files = rule_files(config, str(slo_file) if slo_file is not None else _DEFAULTS)
    _write_or_check(files, out, check, "arrive slo rules")


@command.command("dashboard")
@_slo_option
@_out_options("deploy/grafana", "the dashboard (arrive.json)")
def dashboard(slo_file: Path | None, out: Path, check: bool) -> None:
    """Write the Grafana dashboard (objectives and error budgets from the recording
    rules, latency, fallbacks, online accuracy, drift, freshness, ingest)."""
    from arrive.monitoring.dashboard import FILE, dashboard
    from arrive.monitoring.grafana import to_json
    from arrive.monitoring.slo import load_slo

    _write_or_check(
        {FILE: to_json(dashboard(load_slo(slo_file)))}, out, check, "arrive slo dashboard"
    )


def _write_or_check(files: dict[str, str], out: Path, check: bool, made_by: str) -> None:
    """Write ``files`` (name → text) into ``out``; with ``check``, write nothing and exit 1
    when a file there differs."""
    if check:
        stale = [name for name, text in files.items() if _read(out / name) != text]
        for name in stale:
            click.echo(f"{out / name}: differs from `{made_by}` output", err=True)
        click.get_current_context().exit(1 if stale else 0)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"--out {out}: cannot write {', '.join(files)} ({exc.strerror})"
        ) from None
    click.echo(f"wrote {', '.join(str(out / name) for name in files)}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
