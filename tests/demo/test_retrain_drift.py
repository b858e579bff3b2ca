"""The drift demo end to end on a small size: its decisions and its recovery figure follow
from the data the walk produced (nothing is asserted that the demo itself decided)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arrive.cli.main import run
from arrive.demo import retrain_drift, retrain_drift_report
from arrive.demo.retrain_drift import DriftDemo, DriftScenario
from arrive.registry.promotion import PromotionPolicy
from arrive.training.pipeline import TrainConfig
from arrive.training.retrain import RetrainSettings

# Small and quick: 300 orders a day, a quick model, no per-run training report (most of
# a small run's time), and a first-model gate that a P90 calibrated on 300 orders can
# pass (the demo's default gate is the production one).
SETTINGS = RetrainSettings(
    min_compare_orders=60,
    min_segment_orders=40,
    train=TrainConfig(
        select_groups=False,
        model_params={"learning_rate": 0.2, "num_leaves": 15},
        report=False,
    ),
    gate=PromotionPolicy(coverage_p90_min=0.6, coverage_p90_max=1.0),
)
SCENARIO = DriftScenario(
    days=5,
    orders_per_day=300,
    drift_day=3,
    travel_slowdown=0.5,
    first_retrain_day=2,
    retrain=SETTINGS,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DriftDemo:
    steps: list[str] = []
    result = retrain_drift.run_drift_demo(
        tmp_path_factory.mktemp("drift"), SCENARIO, lambda what, _d, _t: steps.append(what)
    )
    assert any("retrain: train" in s for s in steps)  # progress reaches the caller
    return result


def test_each_day_from_the_first_retrain_has_a_decision(demo: DriftDemo) -> None:
    first = SCENARIO.first_retrain_day - 1
    expected = [first <= d < SCENARIO.days - 1 for d in range(SCENARIO.days)]
    assert [d.outcome is not None for d in demo.days] == expected
    outcome = demo.days[first].outcome
    assert outcome is not None
    runs = demo.data_dir.parent / "runs"
    assert len(list(runs.glob("*/outcome.json"))) == SCENARIO.days - 1 - first
    assert not list(runs.glob("*/report.html"))  # TrainConfig(report=False)
    assert outcome.status == "promoted"  # nothing to compare with yet


def test_production_changes_exactly_when_a_retrain_promotes_or_rolls_out(demo: DriftDemo) -> None:
    for today, tomorrow in zip(demo.days, demo.days[1:], strict=False):
        if today.outcome is None:
            continue
        moved = today.outcome.status in ("promoted", "rolled_out")
        expected = today.outcome.version if moved else today.production_version
        assert tomorrow.production_version == expected


def test_every_compared_decision_follows_its_figures(demo: DriftDemo) -> None:
    compared = [d.outcome for d in demo.days if d.outcome and d.outcome.figures]
    assert compared, "no retrain compared a candidate with production"
    for outcome in compared:
        f = outcome.figures
        better = f["candidate_mae_s"] <= f["production_mae_s"] * (1 - SETTINGS.margin)
        no_regression = all(s["change"] <= SETTINGS.segment_bound for s in f["segments"])
        assert (outcome.status == "rolled_out") == (better and no_regression), outcome.reason
        if outcome.status != "rolled_out":
            assert outcome.reason.startswith("not better than production")


def test_the_drift_shows_and_the_recovery_figure_is_the_days_own(demo: DriftDemo) -> None:
    rec = demo.recovery
    served = {d.day: d for d in demo.days if d.production is not None}
    pre = [served[d].production.mae_s for d in rec.pre_days]  # type: ignore[union-attr]
    assert rec.pre_days == [d for d in served if d < SCENARIO.drift_at]
    assert rec.pre_level_s == pytest.approx(np.mean(pre))
    # rides 50 % slower: production, trained before it, errs more on the drift's first day
    assert rec.post_mae_s[SCENARIO.drift_at] > rec.pre_level_s * 1.05
    assert rec.recovered_day != SCENARIO.drift_at
    bound = rec.pre_level_s * 1.05
    expected = next((d for d, mae in rec.post_mae_s.items() if mae <= bound), None)
    assert rec.recovered_day == expected
    assert rec.within == (expected is not None and expected - SCENARIO.drift_at <= 2)
    # beside it, the same rule on the MAE over each day's mean delivery time
    for day, share in rec.post_relative.items():
        assert share == pytest.approx(rec.post_mae_s[day] / served[day].mean_duration_s)
    bound = rec.pre_relative * 1.05
    expected = next((d for d, share in rec.post_relative.items() if share <= bound), None)
    assert rec.recovered_day_relative == expected
    assert rec.within_relative == (expected is not None and expected - SCENARIO.drift_at <= 2)


def test_the_report_and_the_console_show_every_day(demo: DriftDemo, tmp_path: Path) -> None:
    html = retrain_drift_report.write_drift_report(tmp_path / "report.html", demo).read_text()
    assert "Day by day" in html
    assert html.count("<svg") >= 2
    for day in demo.days:
        if day.outcome is not None:
            assert day.outcome.reason.split(":")[0] in html
    lines = retrain_drift_report.console_lines(demo)
    assert len(lines) == len(demo.days) + 1
    assert lines[SCENARIO.drift_at].split()[3] == "drift"
    assert "Pre-drift level" in lines[-1]
    assert "Relative to the mean delivery time" in lines[-1]


def test_the_cli_needs_a_simulation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--retrain", "daily", "--workdir", str(tmp_path), "--quiet"]
    assert run(args) == 2
    err = capsys.readouterr().err
    assert "--retrain daily: needs --simulate" in err
    assert run([*args, "--simulate", "--days", "7"]) == 2
    err = capsys.readouterr().err
    assert "--days 7: --retrain daily needs 8 or more" in err
    assert "Traceback" not in err
