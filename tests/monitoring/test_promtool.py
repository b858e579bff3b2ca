"""The generated rules under the real Prometheus toolchain: ``promtool check rules``,
then ``promtool test rules`` on every case of :mod:`rule_cases` (Debian's
``prometheus`` package; ``./dev test`` installs it).

The unit tests run on a copy of the rules whose annotations keep only ``runbook_url``:
promtool compares annotations exactly, and the others print ``$value``. The full
annotations are checked by ``promtool check rules`` (template syntax) and by
test_rules.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from arrive.monitoring.rules import ALERTS_FILE, alert_names, rule_files
from arrive.monitoring.slo import load_slo

from .rule_cases import CASES, Case

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.usefixtures("require_prometheus")


GROUP_ORDER = ["arrive-slo-recording", "arrive-slo-burn", "arrive-causes"]
"""Recording rules first at each step, as within one group: promtool's default order is
a map's (random), and an alert evaluated before the recording rules of its step sees the
previous step's values, which the 5-minute lookback drops at a 30-minute step."""


def _written(directory: Path) -> list[Path]:
    paths = []
    for name, text in rule_files(load_slo(), "test").items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
def test_promtool_check_rules_accepts_the_generated_files(tmp_path: Path) -> None:
    result = _promtool("check", "rules", *_written(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 20 rules found" in result.stdout


@needs_promtool
def test_promtool_check_rules_refuses_a_broken_expression(tmp_path: Path) -> None:
    """The check above can fail: an expression that does not parse is refused."""
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(
        "groups:\n- name: x\n  rules:\n  - alert: X\n    expr: sum(rate(arrive_store_up[5m])\n"
    )
    assert _promtool("check", "rules", broken).returncode != 0


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    alerts = set(alert_names(load_slo()))
    firing = {case.alert for case in CASES if case.fires}
    silent = {case.alert for case in CASES if not case.fires}
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - silent == set(), "alerts never shown silent"
    assert {case.alert for case in CASES} <= alerts, "cases of alerts that do not exist"


def _unit_test_files(
    directory: Path, rule_paths: list[Path], cases: tuple[Case, ...]
) -> list[Path]:
    """One promtool test file per step (the rules' evaluation interval is per file)."""
    files = []
    for step in sorted({case.step for case in cases}):
        document = {
            "rule_files": [str(path) for path in rule_paths],
            "evaluation_interval": step,
            "group_eval_order": GROUP_ORDER,
            "tests": [_unit_test(case) for case in cases if case.step == step],
        }
        files.append(directory / f"alerts-{step}.test.yml")
        files[-1].write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return files


def _unit_test(case: Case) -> dict[str, Any]:
    expected = []
    if case.fires:
        runbook = f"docs/runbooks/{case.alert}.md"
        expected = [{"exp_labels": case.labels, "exp_annotations": {"runbook_url": runbook}}]
    return {
        "name": f"{case.alert}: {case.why}",
        "interval": case.step,
        "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
        "alert_rule_test": [
            {"eval_time": case.at, "alertname": case.alert, "exp_alerts": expected}
        ],
    }


def _runbook_only(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["annotations"] = {"runbook_url": rule["annotations"]["runbook_url"]}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


@needs_promtool
def test_promtool_unit_tests_of_every_alert_pass(tmp_path: Path) -> None:
    paths = _written(tmp_path)
    _runbook_only(tmp_path / ALERTS_FILE)
    tests = _unit_test_files(tmp_path, paths, CASES)
    result = _promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests)


@needs_promtool
def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """Every case turned around (firing expected where silent and back) fails, one by one:
    the table's verdicts are what promtool computes, not what it cannot tell apart."""
    paths = _written(tmp_path)
    _runbook_only(tmp_path / ALERTS_FILE)
    flipped = tuple(
        Case(c.alert, c.why, c.series, c.at, not c.fires, c.labels or {"severity": "page"}, c.step)
        for c in CASES
    )
    result = _promtool("test", "rules", *_unit_test_files(tmp_path, paths, flipped))
    assert result.returncode != 0
    failed = sum(f"{c.alert}: {c.why}" in result.stderr for c in flipped)
    assert failed == len(CASES), result.stderr
