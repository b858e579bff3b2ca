"""``arrive slo``: service-level objectives, turned into Prometheus rules and a Grafana
dashboard."""

from __future__ import annotations

from pathlib import Path

import click

from arrive.errors import ConfigError

_DEFAULTS = "arrive/monitoring/slo.toml, the defaults"


@click.group("slo")
def command() -> None:
    """Service-level objectives (slo.toml), and the Prometheus rules and Grafana dashboard
    made from them."""


@command.command("rules")
@click.option(
    "--slo",
    "slo_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SLO file (TOML) [default: the shipped slo.toml, see docs/slo.md].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("deploy/prometheus"),
    show_default=True,
    help="Directory the rule files are written to.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 when a file in --out differs from what would be written.",
)
def rules(slo_file: Path | None, out: Path, check: bool) -> None:
    """Write the recording rules (each objective's error ratios) and the alert rules
    (multi-window burn rates, and alerts on causes, each linking its runbook)."""
    from arrive.monitoring.rules import rule_files
    from arrive.monitoring.slo import load_slo

    config = load_slo(slo_file)
    files = rule_files(config, str(slo_file) if slo_file is not None else _DEFAULTS)
    if check:
        stale = [name for name, text in files.items() if _read(out / name) != text]
        for name in stale:
            click.echo(f"{out / name}: differs from `arrive slo rules` output", err=True)
        click.get_current_context().exit(1 if stale else 0)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the rule files ({exc.strerror})") from None
    click.echo(f"wrote {', '.join(str(out / name) for name in files)}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


@command.command("dashboard")
@click.option(
    "--slo",
    "slo_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SLO file (TOML) [default: the shipped slo.toml, see docs/slo.md].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("deploy/grafana"),
    show_default=True,
    help="Directory the dashboard (arrive.json) is written to.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 when the dashboard in --out differs from what would be written.",
)
def dashboard(slo_file: Path | None, out: Path, check: bool) -> None:
    """Write the Grafana dashboard (objectives and error budgets from the recording
    rules, latency, fallbacks, online accuracy, drift, freshness, ingest)."""
    from arrive.monitoring.dashboard import FILE, dashboard
    from arrive.monitoring.grafana import to_json
    from arrive.monitoring.slo import load_slo

    text, path = to_json(dashboard(load_slo(slo_file))), out / FILE
    if check:
        stale = _read(path) != text
        if stale:
            click.echo(f"{path}: differs from `arrive slo dashboard` output", err=True)
        click.get_current_context().exit(1 if stale else 0)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the dashboard ({exc.strerror})") from None
    click.echo(f"wrote {path}")
