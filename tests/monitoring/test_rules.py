"""The generated rule files: committed as generated, linked to runbooks, built on the
metric names the services really expose (the shared metrics contract)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from arrive.cli.main import run
from arrive.monitoring.rules import ALERTS_FILE, RECORDING_FILE, alert_rules, rule_files
from arrive.monitoring.slo import load_slo, parse_slo

from .contract import EXPOSED

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy" / "prometheus"
_NAME = re.compile(r"\barrive_[a-z0-9_]+\b(?!:)")


def test_the_committed_files_are_the_generators_output(tmp_path: Path) -> None:
    assert run(["slo", "rules", "--out", str(DEPLOY), "--check"]) == 0, (
        "deploy/prometheus is stale: run `arrive slo rules`"
    )
    (tmp_path / RECORDING_FILE).write_text("stale")
    assert run(["slo", "rules", "--out", str(tmp_path), "--check"]) == 1


def test_rules_is_written_where_asked(tmp_path: Path) -> None:
    assert run(["slo", "rules", "--out", str(tmp_path / "rules")]) == 0
    assert sorted(p.name for p in (tmp_path / "rules").iterdir()) == [
        ALERTS_FILE,
        RECORDING_FILE,
    ]


def _rules(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_rules_name_only_metrics_of_the_contract() -> None:
    files = rule_files(load_slo(), "test")
    used: set[str] = set()
    for text in files.values():
        for rule in _rules(yaml.safe_load(text)):
            used |= set(_NAME.findall(rule["expr"]))
    assert used - EXPOSED == set()
    assert "arrive_store_up" in used  # the pattern finds names at all


def test_every_alert_has_a_severity_and_links_its_runbook() -> None:
    for rule in _rules(alert_rules(load_slo())):
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks/{rule['alert']}.md"
        assert rule["annotations"]["summary"]


def test_the_runbook_base_url_is_configurable() -> None:
    config = parse_slo({"runbook_base_url": "https://git.example/arrive/docs/runbooks/"}, "t")
    urls = [rule["annotations"]["runbook_url"] for rule in _rules(alert_rules(config))]
    assert "https://git.example/arrive/docs/runbooks/FeatureStoreDown.md" in urls


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("availability", {"objective": 0.99}, 'availability"} > 0.144'),  # 14.4 x 1 %
        ("latency", {"threshold_s": 0.05}, 'le="0.05"'),
        ("freshness", {"max_lag_s": 120}, "max(arrive_ingest_lag_seconds) > bool 120"),
    ],
)
def test_the_objectives_reach_the_expressions(
    section: str, values: dict[str, Any], expected: str
) -> None:
    texts = rule_files(parse_slo({section: values}, "t"), "t")
    assert expected in texts[RECORDING_FILE] + texts[ALERTS_FILE]
    assert expected not in "".join(rule_files(load_slo(), "t").values())
