"""Options several commands share, declared once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

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
