"""``arrive retrain --every``'s metrics: runs by outcome and the last run of each, with
the names the alert rules use (the metrics contract)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from arrive.monitoring.retrain_metrics import RetrainMetrics

from .contract import EXPOSED


def test_runs_are_counted_by_outcome_with_the_time_of_the_last() -> None:
    metrics = RetrainMetrics()
    metrics.record("promoted", 1000.0)
    metrics.record("blocked", 2000.0)
    metrics.record("blocked", 3000.0)
    registry = CollectorRegistry()
    registry.register(metrics)
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert samples[("arrive_retrain_runs_total", "blocked")] == 2
    assert samples[("arrive_retrain_runs_total", "failed")] == 0
    assert samples[("arrive_retrain_last_run_timestamp_seconds", "blocked")] == 3000.0
    assert samples[("arrive_retrain_last_run_timestamp_seconds", "promoted")] == 1000.0
    assert ("arrive_retrain_last_run_timestamp_seconds", "failed") not in samples
    assert {name for name, _ in samples} <= EXPOSED
    with pytest.raises(ValueError, match="unknown retrain outcome 'done'"):
        metrics.record("done", 0.0)
