"""``arrive demo --inject store-outage``: the service's store fails for a stretch of the
replay; FeatureStoreDown, evaluated on the service's scraped /metrics, fires then clears."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from arrive.cli.main import run
from arrive.demo import alert_report, inject, live, report
from arrive.models.artifact import ModelBundle
from arrive.monitoring import outcome
from arrive.registry import LocalRegistry, promote
from arrive.serving.settings import ServeSettings
from arrive.testing.factories import random_marketplace, write_data_dir
from arrive.training.pipeline import TrainConfig, run_training

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


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("outage")
    data = write_data_dir(work / "data", random_marketplace(seed=7, n_orders=1500, days=12))
    registry = LocalRegistry(work / "registry")
    result = run_training(
        data, work / "run", TrainConfig(model_params={"n_estimators": 60}), registry
    )
    promote(registry, result.version or "", "production", reason="test")
    return data, work / "registry"


def test_a_store_outage_falls_back_fires_the_alert_and_clears_it(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    data, registry_dir = trained
    served = LocalRegistry(registry_dir).open("production")
    plan = live.plan_live(data, datetime.fromisoformat(served.version.metrics["test_start"]))
    first, last = plan.orders[0].event_time, plan.orders[-1].event_time
    (fault,) = inject.place(["store-outage"], first, last, (last - first) / 4)
    settings = ServeSettings(
        registry_dir=registry_dir,
        prediction_log_dir=tmp_path / "log",
        compile_cache_dir=tmp_path / "compiled",
        compile_backend="none",
        reload_interval_s=0.0,
        store_check_interval_s=0.05,
    )
    answers = live.run_live(plan, settings, injections=[fault])
    inside = pl.col("created_at").is_between(fault.start, fault.end, closed="left")
    during = answers.filter(inside).get_column("fallback").to_list()
    assert len(during) > 3
    assert set(during) == {"store_unavailable"}
    outside = answers.filter(~inside)
    assert outside.get_column("fallback").null_count() == outside.height

    alerts = inject.replay_alert(fault)
    states = [(t.state, t.time) for t in alerts.transitions]
    assert [s for s, _ in states] == ["pending", "firing", "resolved"]
    pending, firing, resolved = (t for _, t in states)
    assert pending >= fault.start
    assert firing - pending >= alerts.rule.wait
    assert firing < fault.end <= resolved

    bundle = ModelBundle.from_files(served.files)
    result = outcome.join_outcomes(answers, data, bundle, only_model=True)
    assert result.agreement.holds  # the model's answers still equal offline
    assert result.fallbacks["store_unavailable"] == len(during)
    html = report.write_live_report(
        tmp_path / "live.html", result, facts={}, feature_importance={}, alerts=[alerts]
    ).read_text()
    assert "<h2>Injected fault: store-outage</h2>" in html
    assert "<td>FeatureStoreDown</td><td>firing</td>" in html
    assert "<td>FeatureStoreDown</td><td>resolved</td>" in html
    assert "fired at" in alert_report.alert_line(alerts)
    assert "cleared at" in alert_report.alert_line(alerts)
