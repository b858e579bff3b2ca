"""The Grafana dashboard: committed as generated, every panel's PromQL parsed by the real
``promtool``, every metric it names exposed by ``arrive serve``, ``arrive ingest`` or
``arrive monitor`` or recorded by the SLO rules, and the basics of Grafana's schema.

The exposed names are read from the code's own collectors (the service's metric objects,
the ingest collector over a runner that applied one event, the monitor's collectors), not
from a list: a metric renamed there fails this test until the dashboard follows.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from arrive.cli.main import run
from arrive.clock import ManualClock
from arrive.features.online.engine import OnlineEngine
from arrive.ingest.deadletter import MemoryDeadLetter
from arrive.ingest.runner import IngestRunner
from arrive.ingest.source import MemorySource, MemoryStream
from arrive.monitoring import metrics
from arrive.monitoring.dashboard import FILE, VARIABLES, dashboard, error_ratio_records
from arrive.monitoring.drift_metrics import DriftMetrics
from arrive.monitoring.grafana import expressions, to_json
from arrive.monitoring.ingest_metrics import IngestMetrics
from arrive.monitoring.monitor_http import MonitorCollector
from arrive.monitoring.monitor_rollout import RolloutMetrics
from arrive.monitoring.rules import objectives, recording_rules
from arrive.monitoring.slo import load_slo
from arrive.schema.codec import encode_event
from arrive.schema.events import AnyEvent, OrderCreated
from arrive.store.memory import InMemoryStore

ROOT = Path(__file__).parents[2]
COMMITTED = ROOT / "deploy" / "grafana" / FILE
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.usefixtures("require_prometheus")
_BUILTINS = {"__rate_interval": "5m"}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


# -- the names that really exist ---------------------------------------------------------


def _service_families() -> list[Metric]:
    wrappers = [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]
    return [family for wrapper in wrappers for family in wrapper.describe()]


def _ingest_families() -> list[Metric]:
    """The ingest collector after one applied event and one commit (its gauges only
    appear then)."""
    clock = ManualClock(datetime(2025, 3, 3, 12, 0, tzinfo=UTC))
    stream = MemoryStream()
    stream.append(encode_event(OrderCreated(event_id="e", event_time=clock.now(), order_id="o")))
    engine = OnlineEngine(InMemoryStore())

    def apply(events: Sequence[AnyEvent]) -> None:
        engine.apply(events)

    runner = IngestRunner(MemorySource(stream, finite=True), apply, MemoryDeadLetter(), clock)
    runner.run()
    return list(IngestMetrics(runner, engine, clock).collect())


def _monitor_families() -> list[Metric]:
    quality = MonitorCollector(lambda: ({}, pl.DataFrame()))
    return [*quality.collect(), *DriftMetrics().collect(), *RolloutMetrics().collect()]


def _exposed(families: Iterable[Metric]) -> set[str]:
    """The sample names Prometheus stores for ``families``."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
    return {family.name + suffix for family in families for suffix in suffixes[family.type]}


def _recorded() -> set[str]:
    groups = recording_rules(load_slo())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"]}


@pytest.fixture(scope="module")
def known() -> set[str]:
    families = [*_service_families(), *_ingest_families(), *_monitor_families()]
    return _exposed(families) | _recorded()


# -- PromQL ----------------------------------------------------------------------------

_NOT_NAMES = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_NOT_NAMES |= {"and", "or", "unless", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects: identifiers outside strings, label matchers,
    ranges and label lists that are neither a function, an aggregation nor a keyword."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        called = text[match.end() :].lstrip().startswith("(")
        if not called and match.group().lower() not in _NOT_NAMES:
            names.add(match.group())
    return names


def concrete(expr: str) -> str:
    """``expr`` with Grafana's variables replaced: ``$__rate_interval`` by 5m, the
    dashboard's own (all inside regex matchers) by ``.*``."""
    return _VARIABLE.sub(lambda m: _BUILTINS.get(m.group(1), ".*"), expr)


def test_metric_names_finds_selected_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"x|y"}[5m])))'
        " / on (job) group_left (version) b_info offset 5m > bool 1e3 or vector(0)"
        " and time() - c:recorded"
    )
    assert metric_names(expr) == {"a_bucket", "b_info", "c:recorded"}


def test_the_exposed_names_come_from_all_three_processes(known: set[str]) -> None:
    """The derivation finds something of each (else the check below proves nothing)."""
    assert {
        "arrive_http_request_seconds_bucket",  # serve, a histogram
        "arrive_predictions_total",  # serve, a counter
        "arrive_ingest_lag_seconds",  # ingest, a gauge shown once an event applied
        "arrive_ingest_events_total",
        "arrive_online_p90_coverage",  # monitor
        "arrive_feature_psi",  # the monitor's drift gauges
        "arrive_slo:error_ratio:rate5m",  # the recording rules
    } <= known
    assert "arrive_http_request_seconds" not in known  # a histogram has no bare series


def test_every_panel_names_only_metrics_that_exist(known: set[str]) -> None:
    used = {name for expr in expressions(dashboard(load_slo())) for name in metric_names(expr)}
    assert used - known == set()
    assert len(used) > 30  # the extraction found the names at all


def test_a_misspelt_metric_would_be_caught(known: set[str]) -> None:
    assert metric_names("sum(rate(arrive_prediction_total[5m]))") - known == {
        "arrive_prediction_total"
    }


def test_every_variable_used_is_defined() -> None:
    document = dashboard(load_slo())
    defined = {variable["name"] for variable in document["templating"]["list"]}
    used = {name for expr in expressions(document) for name in _VARIABLE.findall(expr)}
    assert used - set(_BUILTINS) <= defined
    assert set(VARIABLES) <= used  # each template variable filters something
    for name in VARIABLES:
        variable = next(v for v in document["templating"]["list"] if v["name"] == name)
        assert variable["definition"] == f"label_values(arrive_online_orders, {name})"


def _rule_file(exprs: list[str], path: Path) -> Path:
    rules = [
        {"record": f"arrive_dashboard:expr{i}", "expr": concrete(expr)}
        for i, expr in enumerate(exprs)
    ]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path


def _check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    command = [PROMTOOL, "check", "rules", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@needs_promtool
def test_promtool_parses_every_panel_expression(tmp_path: Path) -> None:
    exprs = expressions(dashboard(load_slo()))
    result = _check_rules(_rule_file(exprs, tmp_path / "dashboard.rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


@needs_promtool
def test_promtool_refuses_a_panel_expression_that_does_not_parse(tmp_path: Path) -> None:
    """The check above can fail: one unbalanced expression among the panels' is refused."""
    exprs = [*expressions(dashboard(load_slo())), "sum(rate(arrive_store_up[$__rate_interval])"]
    assert _check_rules(_rule_file(exprs, tmp_path / "broken.rules.yml")).returncode != 0


@needs_promtool
def test_the_error_budget_left_out_of_windows_without_requests(tmp_path: Path) -> None:
    """The budget panel's own expression under ``promtool test rules``: a steady error
    ratio of half the budget leaves half of it, and two windows without requests (0/0,
    recorded as NaN) neither count nor make the answer NaN."""
    config = load_slo()
    budget = _panel(dashboard(config), "Error budget remaining (30d)")
    expr = next(t["expr"] for t in budget["targets"] if t["legendFormat"] == "availability")
    ratio, target = 0.0005, config.availability.objective
    series = f'{error_ratio_records(config)["5m"]}{{slo="availability"}}'
    (tmp_path / "none.rules.yml").write_text("groups: []\n")
    case = {
        "rule_files": ["none.rules.yml"],
        "evaluation_interval": "5m",
        "tests": [
            {
                "interval": "5m",
                "input_series": [{"series": series, "values": f"{ratio}x10 NaN NaN {ratio}x5"}],
                "promql_expr_test": [
                    {
                        "expr": concrete(expr),
                        "eval_time": "90m",
                        "exp_samples": [
                            {"labels": '{slo="availability"}', "value": 1 - ratio / (1 - target)}
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "budget.test.yml").write_text(yaml.safe_dump(case))
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(tmp_path / "budget.test.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 0.49 < 1 - ratio / (1 - target) < 0.51  # half the budget left


# -- the committed file and the command ------------------------------------------------


def test_the_committed_dashboard_is_the_generators_output(tmp_path: Path) -> None:
    assert COMMITTED.read_text(encoding="utf-8") == to_json(dashboard(load_slo()))
    assert run(["slo", "dashboard", "--out", str(COMMITTED.parent), "--check"]) == 0
    (tmp_path / FILE).write_text("{}")
    assert run(["slo", "dashboard", "--out", str(tmp_path), "--check"]) == 1


def test_dashboard_follows_the_slo_file(tmp_path: Path) -> None:
    slo = tmp_path / "slo.toml"
    slo.write_text("[latency]\nthreshold_s = 0.05\n[availability]\nobjective = 0.995\n")
    assert run(["slo", "dashboard", "--slo", str(slo), "--out", str(tmp_path / "out")]) == 0
    document = json.loads((tmp_path / "out" / FILE).read_text())
    latency = _panel(document, "ETA request latency")
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, 0.05]
    budget = _panel(document, "Error budget remaining (30d)")
    assert any("(1 - 0.995)" in target["expr"] for target in budget["targets"])


def test_a_bad_slo_file_stops_the_command(tmp_path: Path) -> None:
    assert run(["slo", "dashboard", "--slo", str(tmp_path / "missing.toml")]) == 2
    assert not (tmp_path / FILE).exists()


def _panel(document: dict[str, Any], title: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in document["panels"] if p["title"] == title)
    return found


def test_the_objectives_panels_read_every_objective_from_the_recording_rules() -> None:
    config = load_slo()
    exprs = expressions(dashboard(config))
    records = set(error_ratio_records(config).values())
    assert records <= _recorded()
    for objective in objectives(config):
        selector = f'{{slo="{objective.slo}"}}'
        assert any(any(r + selector in e for r in records) for e in exprs), objective.slo


# -- Grafana's schema basics -----------------------------------------------------------


def test_the_dashboard_has_grafanas_basics() -> None:
    document = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert document["uid"]
    assert document["title"]
    assert isinstance(document["schemaVersion"], int)
    assert document["schemaVersion"] >= 36
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) for i in ids)
    for panel in document["panels"]:
        assert panel["type"] in {"row", "timeseries", "stat", "table"}
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}
        assert 0 <= grid["x"] < grid["x"] + grid["w"] <= 24
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs))
        assert panel["type"] == "row" or refs, panel["title"]


def test_no_two_panels_overlap() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard(load_slo())["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} over {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_every_row_of_the_issue_is_there() -> None:
    titles = {p["title"] for p in dashboard(load_slo())["panels"] if p["type"] == "row"}
    assert titles == {
        "Service-level objectives",
        "Latency",
        "Availability",
        "Fallbacks",
        "Online accuracy and coverage (arrive monitor)",
        "Calibration drift",
        "Feature drift and skew",
        "Freshness",
        "Ingest",
        "Prediction log",
        "Model",
        "Rollout (arrive monitor's guardrails)",  # issue 21
    }


def test_the_provisioning_files_load_the_dashboard_from_a_prometheus_source() -> None:
    provisioning = COMMITTED.parent / "provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "arrive.yml").read_text())
    assert [p["type"] for p in providers["providers"]] == ["file"]
    assert providers["providers"][0]["options"]["path"]
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.example.yml").read_text())
    chooser = dashboard(load_slo())["templating"]["list"][0]
    assert chooser["type"] == "datasource"
    assert [s["type"] for s in sources["datasources"]] == [chooser["query"]]
