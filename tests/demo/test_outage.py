"""The alert evaluation of ``arrive demo --inject``, on synthetic samples and the generated
rules; the replays with a store outage (and the other faults) are in test_inject."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from arrive.cli.main import run
from arrive.demo import inject

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_the_alert_goes_pending_fires_after_its_for_and_resolves() -> None:
    samples = [(_at(m), v) for m, v in ((0, 1), (1, 0), (1.5, 0), (2.5, 0), (3, 0), (4, 1), (5, 1))]
    found = inject.alert_timeline(samples, timedelta(minutes=1), lambda v: v == 0)
    assert [(t.time, t.state) for t in found] == [
        (_at(1), "pending"),
        (_at(2.5), "firing"),
        (_at(4), "resolved"),
    ]


def test_a_blip_shorter_than_for_never_fires() -> None:
    samples = [(_at(0), 1.0), (_at(1), 0.0), (_at(1.5), 0.0), (_at(2), 1.0)]
    found = inject.alert_timeline(samples, timedelta(minutes=1), lambda v: v == 0)
    assert [t.state for t in found] == ["pending", "resolved"]


def test_the_rule_evaluated_is_the_generated_feature_store_down() -> None:
    rules = Path("deploy/prometheus/alerts.rules.yml").read_text()
    rule = inject.alert_rule("FeatureStoreDown")
    assert f"expr: {rule.expr}" in rules
    assert (rule.metric, rule.aggregate, rule.op, rule.limit) == ("arrive_store_up", "min", "==", 0)
    assert rule.wait == timedelta(minutes=1)


def test_an_unknown_injection_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["demo", "--inject", "meteor", "--workdir", str(tmp_path / "w"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert "--inject" in err
    assert "meteor" in err
    assert "store-outage" in err
    assert not (tmp_path / "w").exists()  # refused before any work


def test_every_fault_s_alert_is_one_the_demo_can_evaluate() -> None:
    metrics = {name: inject.alert_rule(f.alert).metric for name, f in inject.FAULTS.items()}
    assert metrics == {
        "store-outage": "arrive_store_up",
        "broken-feature": "arrive_feature_skew_mismatch_ratio",
        "stale-ingest": "arrive_ingest_lag_seconds",
    }
    assert inject.alert_rule("FeatureSkew").by == ("feature",)
