"""The live replay: events through ingest into the in-process store, every order asks the
real ETA service (HTTP on loopback) at its creation time, answers joined to outcomes —
and the online evaluation equals the offline one of the same model on the same orders."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from arrive.demo import drift, live, report
from arrive.models.artifact import ModelBundle
from arrive.models.profile import Profile
from arrive.monitoring import outcome
from arrive.monitoring.quality import QUALITY, Band
from arrive.registry import LocalRegistry, promote
from arrive.serving.settings import ServeSettings
from arrive.testing.factories import random_marketplace, write_data_dir
from arrive.training.pipeline import TrainConfig, run_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("live")
    data = write_data_dir(work / "data", random_marketplace(seed=7, n_orders=1500, days=12))
    registry = LocalRegistry(work / "registry")
    config = TrainConfig(model_params={"n_estimators": 120})
    result = run_training(data, work / "run", config, registry)
    promote(registry, result.version or "", "production", reason="test")
    return data, work / "registry"


def _settings(registry_dir: Path, tmp_path: Path, backend: str = "none") -> ServeSettings:
    return ServeSettings(
        registry_dir=registry_dir,
        prediction_log_dir=tmp_path / "log",
        compile_cache_dir=tmp_path / "compiled",
        compile_backend=backend,  # type: ignore[arg-type]
        reload_interval_s=0.0,
    )


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            found |= {int(pid) for pid in (task / "children").read_text().split()}
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return found


def _start(registry_dir: Path) -> datetime:
    version = LocalRegistry(registry_dir).get("production")
    return datetime.fromisoformat(version.metrics["test_start"])


def test_online_answers_equal_the_offline_evaluation(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    data, registry_dir = trained
    plan = live.plan_live(data, _start(registry_dir))
    seen: list[int] = []
    answers = live.run_live(
        plan, _settings(registry_dir, tmp_path), on_progress=lambda d, _: seen.append(d)
    )
    assert answers.height == len(plan.orders) == seen[-1]
    assert answers.get_column("order_id").n_unique() == answers.height
    bundle = ModelBundle.from_files(LocalRegistry(registry_dir).open("production").files)
    result = outcome.join_outcomes(answers, data, bundle)
    agree = result.agreement
    assert agree.orders == result.evaluation.model.n > 100
    assert agree.holds, agree
    # Not only the averages: each order's P50 is the offline model's.
    assert agree.max_p50_gap_s <= 0.01
    assert result.fallbacks.get("model", 0) == answers.height
    assert set(answers.get_column("model_version").to_list()) == {"1"}
    assert result.latency_ms["p50"] > 0

    path = report.write_live_report(
        tmp_path / "live.html", result, facts={"split": "time"}, feature_importance={}
    )
    html = path.read_text()
    for heading in (
        "Online equals offline",
        "Latency",
        "Who answered",
        "Model vs heuristic",
        "By segment",
    ):
        assert f"<h2>{heading}</h2>" in html
    assert set(result.evaluation.segments) >= {"local hour", "market"}
    assert "agree within 0.1%" in html
    lines = report.summary_lines(result)
    assert "agree" in lines[-1]
    assert "DISAGREE" not in lines[-1]


def test_a_wrong_feature_shows_as_disagreement(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """The check can fail: answers shifted by a minute on every order disagree."""
    data, registry_dir = trained
    plan = live.plan_live(data, _start(registry_dir), limit=200)
    answers = live.run_live(plan, _settings(registry_dir, tmp_path))
    skewed = answers.with_columns(pl.col("p50_s") + 120.0, pl.col("p90_s") + 120.0)
    bundle = ModelBundle.from_files(LocalRegistry(registry_dir).open("production").files)
    result = outcome.join_outcomes(skewed, data, bundle)
    assert not result.agreement.holds
    assert "DISAGREE" in report.summary_lines(result)[-1]


def test_ctrl_c_stops_the_service_and_leaves_nothing_behind(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    data, registry_dir = trained
    plan = live.plan_live(data, _start(registry_dir), limit=50)
    before = _children()

    def interrupt(done: int, _: int) -> None:
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        live.run_live(plan, _settings(registry_dir, tmp_path, "lleaves"), on_progress=interrupt)
    assert not [t for t in threading.enumerate() if t.name == "arrive-service"]
    assert _children() <= before  # the tree compiler's child process is gone too


def test_a_range_without_orders_is_refused(trained: tuple[Path, Path]) -> None:
    from arrive.errors import DataError

    data, _ = trained
    with pytest.raises(DataError, match="no order was created"):
        live.plan_live(data, datetime.fromisoformat("2999-01-01T00:00:00+00:00"))


def test_the_replay_note_explains_a_count_that_differs_from_the_test_orders() -> None:
    first = datetime.fromisoformat("2022-03-31T15:30:00+00:00")
    note = report.replay_note(6560, 6560, 6556, first)
    assert "The replay sent 6,560 orders" in note
    assert "the training run tested on 6,556" in note
    assert "4 were created at that same time as the first test order" in note
    assert "calibration slice" in note
    assert "never delivered" in report.replay_note(6570, 6560, 6556, first)
    assert "limited" in report.replay_note(100, 100, 6556, first)


def test_the_report_shows_the_monitors_calibration_and_drift_of_the_replay(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    data, registry_dir = trained
    plan = live.plan_live(data, _start(registry_dir))
    settings = _settings(registry_dir, tmp_path)
    answers = live.run_live(plan, settings)
    bundle = ModelBundle.from_files(LocalRegistry(registry_dir).open("production").files)
    result = outcome.join_outcomes(answers, data, bundle)
    quality = result.quality
    # One window, and its figures are those of the orders the evaluation scored.
    assert quality.get_column("window_start").n_unique() == 1
    whole = quality.filter(pl.col("segment_kind") == "all")
    assert whole.get_column("orders").sum() == result.agreement.orders
    covered = (whole.get_column("orders") * whole.get_column("p90_coverage")).sum()
    assert covered / result.agreement.orders == pytest.approx(result.agreement.online_coverage)
    markets = quality.filter(pl.col("segment_kind") == "market")
    assert markets.get_column("orders").sum() == result.agreement.orders
    assert markets.height > 1
    # The heuristic's MAE on the model's own orders, overall and per segment.
    assert whole.get_column("heuristic_orders").to_list() == [result.agreement.orders]
    assert whole.get_column("heuristic_mae_s").item() == pytest.approx(
        result.evaluation.heuristic.mae_s
    )
    assert markets["heuristic_orders"].to_list() == markets["orders"].to_list()

    assert bundle.profile is not None
    found = drift.replay_drift(
        settings.prediction_log_dir or tmp_path, {"1": bundle.profile}, answers["order_id"]
    )
    assert found.get_column("feature").to_list() == list(bundle.profile.features)
    assert set(found.get_column("orders").to_list()) == {answers.height}
    assert found.get_column("psi").null_count() == 0
    # Fewer orders than the monitor needs to name a drift: noted, none named.
    assert answers.height < 500
    assert not found.get_column("drifted").any()
    assert set(found.get_column("note").to_list()) == {"too few orders"}

    html = report.write_live_report(
        tmp_path / "live.html", result, facts={}, feature_importance={}, drift=found
    ).read_text()
    assert "<h2>Calibration by segment</h2>" in html
    assert "<h3>By market</h3>" in html
    for row in markets.iter_rows(named=True):
        assert (
            f'<td>{row["segment"]}</td><td class="num">{row["orders"]:,}</td>'
            f'<td class="num">{row["p50_mae_s"] / 60:.2f} min</td>'
            f'<td class="num">{row["heuristic_mae_s"] / 60:.2f} min</td>'
        ) in html
    assert "<h2>Feature drift</h2>" in html
    assert "No feature drifted" in html


def test_a_shifted_profile_names_the_drifted_feature(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """The drift table can name a feature: the served values against a reference profile
    where training saw every value of one feature in its top bin."""
    data, registry_dir = trained
    plan = live.plan_live(data, _start(registry_dir), limit=150)
    settings = _settings(registry_dir, tmp_path)
    answers = live.run_live(plan, settings)
    profile = ModelBundle.from_files(LocalRegistry(registry_dir).open("production").files).profile
    assert profile is not None
    name, feature = next(
        (n, f) for n, f in profile.features.items() if f.kind == "numeric" and len(f.cuts) > 3
    )
    # training saw every value in the top bin
    shares = (*(0.0 for _ in feature.cuts), 1.0, 0.0)
    shifted = Profile({**profile.features, name: replace(feature, shares=shares)}, profile.rows)
    log_dir, orders = settings.prediction_log_dir or tmp_path, answers["order_id"]
    before = drift.replay_drift(log_dir, {"1": profile}, orders, min_orders=100)
    found = drift.replay_drift(log_dir, {"1": shifted}, orders, min_orders=100)
    named = found.filter(pl.col("drifted")).get_column("feature").to_list()
    assert name in named
    assert name not in before.filter(pl.col("drifted")).get_column("feature").to_list()
    # only that feature's PSI moved
    assert found.drop("psi", "drifted").equals(before.drop("psi", "drifted"))
    assert found.filter(pl.col("feature") != name).equals(before.filter(pl.col("feature") != name))
    html = report.drift_section(found)
    assert f"Drifted: {', '.join(named)}." in html


def test_calibration_tables_flag_drifted_segments_and_grey_small_ones() -> None:
    rows = [
        ("all", "all", 900, 0.90, 0.88, 0.92, False),
        ("market", "m1", 800, 0.95, 0.935, 0.963, True),
        ("market", "m2", 80, 0.85, 0.76, 0.91, False),
        ("market", "m3", 20, 0.50, 0.30, 0.70, True),
    ]
    quality = pl.DataFrame(
        [
            {
                "window_start": datetime.fromisoformat("2026-01-01T00:00:00+00:00"),
                "window_end": datetime.fromisoformat("2026-01-02T00:00:00+00:00"),
                "version": "1",
                "variant": "production",
                "segment_kind": kind,
                "segment": segment,
                "orders": orders,
                "p90_coverage": coverage,
                "p90_coverage_lower": lower,
                "p90_coverage_upper": upper,
                "calibration_drift": flagged,
            }
            for kind, segment, orders, coverage, lower, upper, flagged in rows
        ],
        schema=QUALITY,
    )
    html = report.calibration_section(quality, Band())
    assert "Outside the band: market m1 (1), market m3 (1)." in html
    assert '<tr class="bad"><td>1 / production</td><td>m1</td>' in html
    assert '<tr class=""><td>1 / production</td><td>m2</td>' in html
    assert '<tr class="muted"><td>1 / production</td><td>m3</td>' in html  # 20 orders: greyed
    assert "outside the band, few orders" in html
    assert "93.5% – 96.3%" in html
    assert "88%–92%" in html
    empty = report.calibration_section(quality.filter(pl.col("segment_kind") == "all"), Band())
    assert "No segment is surely outside the band." in empty
