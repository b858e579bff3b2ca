"""``arrive demo --inject``: each fault, on for a stretch of the live replay, drives the
metric its generated alert reads, and the alert goes pending, fires, then resolves once
the fault is gone; the same replay with the faults measured but not armed fires nothing.

One replay carries the three faults (spread over the replayed days), one control replay
none; both on the session model (:mod:`arrive.testing.trained`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from arrive.cli.main import run
from arrive.demo import alert_report, inject, live, report, skew
from arrive.demo.inject import BROKEN_FEATURE, AlertReplay, Injection
from arrive.monitoring import outcome
from arrive.registry import LocalRegistry
from arrive.serving.settings import ServeSettings
from arrive.testing.trained import Trained

FAULTS = ("store-outage", "broken-feature", "stale-ingest")
EVERY = timedelta(minutes=15)
"""Between two skew checks: the FeatureSkew rule's ``for``, so it fires on the second."""


@dataclass(frozen=True)
class Replayed:
    injections: dict[str, Injection]
    answers: pl.DataFrame
    trained: Trained

    def alerts(self, name: str) -> AlertReplay:
        return inject.replay_alert(self.injections[name])


def _replay(trained: Trained, work: Path, *, armed: bool) -> Replayed:
    registry = LocalRegistry(work / "registry")
    registry.register(dict(trained.files), dict(trained.metadata))
    registry.set_alias("production", "1", reason="test")
    start = datetime.fromisoformat(registry.open("production").version.metrics["test_start"])
    plan = live.plan_live(trained.data_dir, start)
    first, last = plan.orders[0].event_time, plan.orders[-1].event_time
    span = last - first
    times = [order.event_time for order in plan.orders]
    injections = inject.place(FAULTS, times, span / 8, armed=armed)
    settings = ServeSettings(
        registry_dir=work / "registry",
        prediction_log_dir=work / "log",
        compile_cache_dir=trained.compile_cache,
        compile_backend="none",
        reload_interval_s=0.0,
        store_check_interval_s=0.05,
    )
    answers = live.run_live(plan, settings, injections=injections)
    broken = injections[1]
    ids = answers.get_column("order_id").to_list()
    skew.replay_skew(
        work / "log",
        ids,
        trained.data_dir,
        broken,
        timezone=plan.timezone,
        every=EVERY,
        lead=span / 16,
    )
    return Replayed({i.fault.name: i for i in injections}, answers, trained)


@pytest.fixture(scope="module")
def faulty(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    return _replay(trained, tmp_path_factory.mktemp("inject"), armed=True)


@pytest.fixture(scope="module")
def control(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    return _replay(trained, tmp_path_factory.mktemp("control"), armed=False)


@pytest.mark.parametrize("name", FAULTS)
def test_the_fault_fires_its_alert_then_clears_it(faulty: Replayed, name: str) -> None:
    alerts = faulty.alerts(name)
    fault = faulty.injections[name]
    states = [(t.state, t.time) for t in alerts.transitions]
    assert [s for s, _ in states] == ["pending", "firing", "resolved"]
    pending, firing, resolved = (t for _, t in states)
    assert fault.start <= pending
    assert firing - pending >= alerts.rule.wait
    assert firing < fault.end <= resolved
    assert alerts.rule.alert == fault.fault.alert


@pytest.mark.parametrize("name", FAULTS)
def test_without_the_fault_its_alert_never_goes_pending(control: Replayed, name: str) -> None:
    alerts = control.alerts(name)
    assert len(control.injections[name].samples) > 10  # measured all along
    assert alerts.series  # the metric was there ...
    assert not [t for ts in alerts.series.values() for t in ts]  # ... and never alerting


def test_a_store_outage_falls_back_while_it_lasts(faulty: Replayed) -> None:
    fault = faulty.injections["store-outage"]
    inside = pl.col("created_at").is_between(fault.start, fault.end, closed="left")
    during = faulty.answers.filter(inside).get_column("fallback").to_list()
    assert len(during) > 3
    assert set(during) == {"store_unavailable"}
    before = faulty.answers.filter(pl.col("created_at") < fault.start)
    assert before.get_column("fallback").null_count() == before.height


def test_outside_the_faults_the_model_s_answers_equal_offline(
    faulty: Replayed, tmp_path: Path
) -> None:
    answers, injections = faulty.answers, list(faulty.injections.values())
    broken = inject.broken_orders(answers, injections)
    assert broken  # orders answered on broken features, left out of the comparison ...
    data_dir, bundle = faulty.trained.data_dir, faulty.trained.bundle()
    result = outcome.join_outcomes(answers, data_dir, bundle, only_model=True, exclude=broken)
    assert result.agreement.holds
    assert result.fallbacks["store_unavailable"] > 3
    assert result.agreement.orders < result.evaluation.model.n
    alerts = [faulty.alerts(name) for name in FAULTS]
    html = report.write_live_report(
        tmp_path / "live.html", result, facts={}, feature_importance={}, alerts=alerts
    ).read_text()
    assert [f"<h2>Injected fault: {name}</h2>" in html for name in FAULTS] == [True] * 3


def test_only_the_broken_feature_shows_skew(faulty: Replayed) -> None:
    alerts = faulty.alerts("broken-feature")
    assert list(alerts.fired) == [BROKEN_FEATURE]
    assert alerts.label == f'FeatureSkew{{feature="{BROKEN_FEATURE}"}}'
    assert len(alerts.series) > 20  # every served feature was compared


def test_stale_ingest_makes_the_service_serve_stale_features(faulty: Replayed) -> None:
    fault = faulty.injections["stale-ingest"]
    inside = pl.col("created_at").is_between(fault.start, fault.end, closed="left")
    during = faulty.answers.filter(inside).get_column("fallback").to_list()
    after = faulty.answers.filter(pl.col("created_at") >= fault.end)
    assert "stale_features" in during
    assert "stale_features" not in after.get_column("fallback").to_list()  # caught up


def test_the_report_shows_each_alert_beside_its_metric(faulty: Replayed, tmp_path: Path) -> None:
    sections = [
        alert_report.alert_section(faulty.alerts(name), f"a{i}") for i, name in enumerate(FAULTS)
    ]
    for name, html in zip(FAULTS, sections, strict=True):
        alerts = faulty.alerts(name)
        assert f"<h2>Injected fault: {name}</h2>" in html
        assert "<svg" in html
        assert f"{alerts.rule.metric} around the injected {name}" in html
        for state in ("pending", "firing", "resolved"):
            assert f"<td>{state}</td>" in html
        line = alert_report.alert_line(alerts)
        assert "fired at" in line
        assert "cleared at" in line


def test_help_lists_every_fault_on_its_own_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for name, fault in inject.FAULTS.items():
        assert any(line.split() == [name, *fault.summary.split()] for line in out.splitlines()), (
            name
        )


def test_a_fault_given_twice_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["demo", "--inject", "stale-ingest", "--inject", "stale-ingest", "--quiet"]
    code = run([*args, "--workdir", str(tmp_path / "w")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert "--inject" in err
    assert not (tmp_path / "w").exists()
