"""The rollout plan: how long the shadow lasts, the canary steps, how much evidence a
step needs before it may advance, and which key assigns a request to a variant.

A plan comes from a TOML file (:func:`plan_from_toml`) or from command-line options
(:func:`plan_from_options`); both end in :meth:`RolloutPlan.validated`, whose errors
are one line naming the field::

    shadow_minutes = 60          # 0: no shadow phase, the first canary step starts at once
    steps = [5, 25, 50, 100]     # candidate share of units, percent, increasing, ending at 100
    min_orders = 500             # joined orders a step needs before it may advance
    min_minutes = 30             # minutes a step lasts at least
    unit = "customer"            # customer (else order) | order | store | market
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, get_args

import msgspec

from arrive.errors import ConfigError
from arrive.tomlfile import read_toml

UnitKey = Literal["customer", "order", "store", "market"]
UNIT_KEYS: Final[tuple[str, ...]] = get_args(UnitKey)
DEFAULT_STEPS: Final = (5.0, 25.0, 50.0, 100.0)


class RolloutPlan(msgspec.Struct, frozen=True, kw_only=True):
    """A validated rollout plan (build it with :meth:`validated`).

    Attributes:
        shadow_minutes: how long the candidate scores in the shadow before the first step.
        steps: the candidate's share of units at each canary step, in percent.
        min_orders: joined orders a phase (shadow or step) needs before it may advance.
        min_minutes: minutes a canary step lasts at least.
        unit: what a unit is: ``customer`` (the order id when a request has no
            customer), ``order``, ``store`` or ``market``.
    """

    shadow_minutes: float = 60.0
    steps: tuple[float, ...] = DEFAULT_STEPS
    min_orders: int = 500
    min_minutes: float = 30.0
    unit: UnitKey = "customer"

    @classmethod
    def validated(cls, fields: Mapping[str, Any]) -> RolloutPlan:
        """A plan from ``fields`` (missing ones take their default).

        Raises:
            ConfigError: an unknown field, or a value out of its range (one line).
        """
        unknown = sorted(set(fields) - set(cls.__struct_fields__))
        if unknown:
            known = ", ".join(cls.__struct_fields__)
            raise ConfigError(f"plan: unknown field {unknown[0]!r} (known: {known})")
        defaults = cls()
        return cls(
            shadow_minutes=_minutes(fields, "shadow_minutes", defaults.shadow_minutes),
            steps=_steps(fields.get("steps", defaults.steps)),
            min_orders=_count(fields.get("min_orders", defaults.min_orders)),
            min_minutes=_minutes(fields, "min_minutes", defaults.min_minutes),
            unit=_unit(fields.get("unit", defaults.unit)),
        )

    def share(self, step: int) -> float:
        """The candidate's share of units (0..1) at canary step ``step`` (0-based)."""
        return self.steps[step] / 100.0


def plan_from_toml(path: Path) -> RolloutPlan:
    """The plan in a TOML file (a top-level table, or a ``[rollout]`` table)."""
    table = read_toml(path, "plan file")
    inner = table.get("rollout", table)
    if not isinstance(inner, dict):
        raise ConfigError(f"plan file {path}: [rollout] must be a table")
    try:
        return RolloutPlan.validated(inner)
    except ConfigError as exc:
        raise ConfigError(f"plan file {path}: {exc}") from None


def plan_from_options(
    *,
    steps: str | None = None,
    shadow_minutes: float | None = None,
    min_orders: int | None = None,
    min_minutes: float | None = None,
    unit: str | None = None,
) -> RolloutPlan:
    """The plan given by command-line options (``None``: the default); ``steps`` is
    a comma-separated list of percents (``"5,25,50,100"``)."""
    given: dict[str, Any] = {
        "steps": None if steps is None else _split_steps(steps),
        "shadow_minutes": shadow_minutes,
        "min_orders": min_orders,
        "min_minutes": min_minutes,
        "unit": unit,
    }
    return RolloutPlan.validated({k: v for k, v in given.items() if v is not None})


def _split_steps(text: str) -> list[str | float]:
    out: list[str | float] = []
    for part in text.split(","):
        try:
            out.append(float(part.strip().removesuffix("%")))
        except ValueError:
            out.append(part.strip())
    return out


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _minutes(fields: Mapping[str, Any], name: str, default: float) -> float:
    value = fields.get(name, default)
    number = _number(value)
    if number is None or number < 0:
        raise ConfigError(f"plan: {name} must be a number of minutes >= 0, got {value!r}")
    return number


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"plan: min_orders must be a whole number >= 1, got {value!r}")
    return value


def _steps(value: object) -> tuple[float, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"plan: steps must be a list of percents, got {value!r}")
    steps = tuple(_number(v) for v in value)
    for raw, step in zip(value, steps, strict=True):
        if step is None or not 0 < step <= 100:
            raise ConfigError(f"plan: steps: {raw!r} is not a percent in (0, 100]")
    checked = tuple(s for s in steps if s is not None)
    if any(b <= a for a, b in itertools.pairwise(checked)):
        raise ConfigError(f"plan: steps must increase, got {list(checked)}")
    if checked[-1] != 100:
        raise ConfigError(f"plan: steps must end at 100, got {list(checked)}")
    return checked


def _unit(value: object) -> UnitKey:
    for key in get_args(UnitKey):
        if value == key:
            return key  # type: ignore[no-any-return]
    raise ConfigError(f"plan: unit must be one of {', '.join(UNIT_KEYS)}, got {value!r}")
