"""``arrive providers``: the traffic and weather vendors.

``arrive providers serve-sim DATA_DIR`` runs a simulated vendor speaking the OSRM and
Open-Meteo formats, answering from the simulated marketplace in DATA_DIR, with faults
injectable at start (options) and at run time (``POST /_faults``). See docs/providers.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from arrive.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


@click.group("providers")
def command() -> None:
    """Traffic and weather vendors (see docs/providers.md)."""


def _rate(name: str) -> Callable[[F], F]:
    option: Callable[[F], F] = click.option(
        f"--{name}-rate",
        type=float,
        default=0.0,
        show_default=True,
        help=f"Share of requests answered with the {name} fault (0 to 1).",
    )
    return option


@command.command("serve-sim")
@click.argument("data_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8600, show_default=True)
@click.option(
    "--latency-ms", type=float, default=0.0, show_default=True, help="Added to every answer (ms)."
)
@_rate("error")
@_rate("timeout")
@_rate("garbage")
@click.option(
    "--rate-limit",
    default="0",
    show_default=True,
    metavar="N/s",
    help="Requests per second before 429 with Retry-After (0: no limit).",
)
@click.option("--key", default=None, help="API key the generic endpoint requires (X-Api-Key).")
@click.option("--seed", type=int, default=None, help="Seed of the fault draws.")
def serve_sim(
    data_dir: Path,
    host: str,
    port: int,
    latency_ms: float,
    error_rate: float,
    timeout_rate: float,
    garbage_rate: float,
    rate_limit: str,
    key: str | None,
    seed: int | None,
) -> None:
    """Serve a simulated vendor (OSRM route/table, Open-Meteo forecast, generic JSON)
    answering from the simulated marketplace in DATA_DIR."""
    from arrive.testing.vendor.faults import Faults
    from arrive.testing.vendor.server import serve

    changes = {
        "latency_ms": latency_ms,
        "rate_limit_per_s": _per_second(rate_limit),
        "error_rate": error_rate,
        "timeout_rate": timeout_rate,
        "garbage_rate": garbage_rate,
    }
    try:
        faults = Faults().updated(changes)
    except ConfigError as exc:
        raise ConfigError(f"--{str(exc).replace('_', '-')}") from None
    serve(data_dir, host, port, faults, key, seed)


def _per_second(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/s)?\s*", text)
    if match is None:
        raise ConfigError(f"--rate-limit: expected N or N/s (got {text!r})")
    return float(match.group(1))
