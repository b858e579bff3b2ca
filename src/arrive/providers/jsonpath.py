"""Dotted paths into a vendor's JSON answer (``rows.0.elements.0.duration.value``): the
generic adapter's configuration and the fixed formats (OSRM, Open-Meteo) both read with it."""

from __future__ import annotations

import re
from typing import Any, Final

from arrive.errors import ConfigError
from arrive.providers.base import ProviderError

_STEP: Final = re.compile(r"^(?:[A-Za-z_][\w-]*|\d+)$")

Path = tuple[str | int, ...]


def parse(text: str, field: str) -> Path:
    """``text`` (dot-separated keys and list indexes) as a path.

    Raises:
        ConfigError: a step is empty or not a key or an index (the message names ``field``).
    """
    steps = text.split(".")
    for step in steps:
        if not _STEP.match(step):
            raise ConfigError(f"{field}: {text!r} is not a dotted JSON path (bad step {step!r})")
    return tuple(int(s) if s.isdigit() else s for s in steps)


def dig(provider: str, document: Any, path: Path) -> Any:
    """The value at ``path`` in ``document``.

    Raises:
        ProviderError: ``wrong_shape`` when a step is missing or of the wrong kind.
    """
    value = document
    for step in path:
        by_index = isinstance(step, int) and isinstance(value, list) and 0 <= step < len(value)
        by_key = isinstance(step, str) and isinstance(value, dict) and step in value
        if by_index or by_key:
            value = value[step]
        else:
            where = ".".join(str(s) for s in path)
            raise ProviderError(provider, "wrong_shape", f"no {where} in the answer")
    return value
