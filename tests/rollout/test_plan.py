"""The rollout plan: defaults, a TOML file, options, and one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arrive.errors import ConfigError
from arrive.rollout.plan import RolloutPlan, plan_from_options, plan_from_toml


def test_defaults_are_the_architecture_ramp() -> None:
    plan = RolloutPlan.validated({})
    assert plan.steps == (5.0, 25.0, 50.0, 100.0)
    assert plan.unit == "customer"
    assert [plan.share(i) for i in range(4)] == [0.05, 0.25, 0.5, 1.0]


def test_from_a_toml_file_with_or_without_a_rollout_table(tmp_path: Path) -> None:
    flat = tmp_path / "flat.toml"
    flat.write_text("steps = [10, 100]\nmin_orders = 200\nunit = 'store'\n")
    nested = tmp_path / "nested.toml"
    nested.write_text("[rollout]\nsteps = [10, 100]\nmin_orders = 200\nunit = 'store'\n")
    assert plan_from_toml(flat) == plan_from_toml(nested)
    assert plan_from_toml(flat).steps == (10.0, 100.0)


def test_from_options() -> None:
    plan = plan_from_options(steps="1, 10%,100", min_minutes=0, unit="market")
    assert (plan.steps, plan.min_minutes, plan.unit) == ((1.0, 10.0, 100.0), 0.0, "market")
    assert plan.min_orders == RolloutPlan().min_orders


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"steps": [5, 25, 50]}, "steps must end at 100"),
        ({"steps": [25, 5, 100]}, "steps must increase"),
        ({"steps": [5, 5, 100]}, "steps must increase"),
        ({"steps": [0, 100]}, "steps: 0 is not a percent"),
        ({"steps": [5, 150]}, "steps: 150 is not a percent"),
        ({"steps": ["five", 100]}, "steps: 'five' is not a percent"),
        ({"steps": []}, "steps must be a list"),
        ({"steps": "5,100"}, "steps must be a list"),
        ({"min_orders": 0}, "min_orders must be a whole number >= 1"),
        ({"min_orders": 2.5}, "min_orders must be a whole number >= 1"),
        ({"min_orders": True}, "min_orders must be a whole number >= 1"),
        ({"min_minutes": -1}, "min_minutes must be a number of minutes >= 0"),
        ({"shadow_minutes": float("nan")}, "shadow_minutes must be a number"),
        ({"unit": "courier"}, "unit must be one of customer, order, store, market"),
        ({"steps_pct": [5, 100]}, "unknown field 'steps_pct'"),
    ],
)
def test_bad_plans_are_one_line_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        RolloutPlan.validated(fields)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("plan: ")


def test_bad_steps_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="steps: 'x' is not a percent"):
        plan_from_options(steps="5,x,100")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "does not exist"),
        ("steps = [", "not valid TOML"),
        ("rollout = 3", r"\[rollout\] must be a table"),
        ("steps = [50]", "plan: steps must end at 100"),
    ],
)
def test_bad_plan_files_name_the_file(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "plan.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        plan_from_toml(path)
    assert str(path) in str(caught.value)
