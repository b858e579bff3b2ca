"""``arrive serve``: the ETA service over HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import click

from arrive.serving.settings import load_settings

_PATH = click.Path(path_type=Path)


@click.command("serve")
@click.option("--host", help="Interface to listen on [ARRIVE_HOST; default 127.0.0.1].")
@click.option("--port", type=int, help="TCP port [ARRIVE_PORT; default 8000].")
@click.option("--workers", type=int, help="Worker processes [ARRIVE_WORKERS; default 1].")
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="Online feature store: `memory` or redis://HOST:PORT/DB[?prefix=P] [ARRIVE_STORE_URL].",
)
@click.option(
    "--registry", "registry_dir", type=_PATH, help="Model registry directory [ARRIVE_REGISTRY_DIR]."
)
@click.option(
    "--alias",
    type=click.Choice(["production", "canary", "shadow"]),
    help="Registry alias to serve [ARRIVE_ALIAS; default production].",
)
@click.option(
    "--replay-dir",
    type=_PATH,
    help="Data directory whose event log fills the in-process store (memory store only) "
    "[ARRIVE_REPLAY_DIR].",
)
@click.option(
    "--config",
    "config_file",
    type=_PATH,
    help="TOML file of settings (keys named as in docs/configuration.md).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Logging level [ARRIVE_LOG_LEVEL; default info].",
)
def command(
    host: str | None,
    port: int | None,
    workers: int | None,
    store_url: str | None,
    registry_dir: Path | None,
    alias: str | None,
    replay_dir: Path | None,
    config_file: Path | None,
    log_level: str | None,
) -> None:
    """Serve P50/P90 ETAs over HTTP until SIGTERM or Ctrl-C.

    Routes: POST /v1/eta, POST /v1/eta/batch, GET /healthz, /readyz, /metrics,
    /openapi.json, /docs; POST /admin/reload and /admin/kill-switch (bearer token
    ARRIVE_ADMIN_TOKEN). Every setting also comes from an ARRIVE_* environment
    variable or the --config file; options win over the environment, which wins
    over the file. All settings: docs/configuration.md.
    """
    overrides = {
        "host": host,
        "port": port,
        "workers": workers,
        "store_url": store_url,
        "registry_dir": registry_dir,
        "alias": alias,
        "replay_dir": replay_dir,
        "log_level": log_level,
    }
    settings = load_settings(config_file, os.environ, overrides)
    from arrive.serving.http.server import serve

    serve(settings)
