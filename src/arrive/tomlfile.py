"""Reading a user's TOML file (settings, SLOs) with one-line errors naming the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from arrive.errors import ConfigError


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The table in ``path``; ``what`` names the file in errors (``"config file"``).

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8 or not valid TOML.
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path}: not valid TOML ({exc})") from None
