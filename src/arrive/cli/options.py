"""Options several commands share, declared once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from arrive.errors import ConfigError
from arrive.registry.local import DEFAULT_ROOT

F = TypeVar("F", bound=Callable[..., Any])


def registry_option(help: str = "Registry directory.") -> Callable[[F], F]:
    """``--registry DIR`` (parameter ``registry_root``), default ``.arrive/registry``."""
    return click.option(
        "--registry",
        "registry_root",
        type=click.Path(path_type=Path),
        default=DEFAULT_ROOT,
        show_default=True,
        help=help,
    )


def name_values(pairs: Iterable[str], option: str) -> dict[str, Any]:
    """``NAME=VALUE`` pairs (e.g. model parameters), each value read as JSON (a number,
    ``null``, ``true``) or else kept as text.

    Raises:
        ConfigError: a pair is not ``NAME=VALUE``; the message names ``option``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"{option}: expected NAME=VALUE, got {pair!r}")
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value
    return out
