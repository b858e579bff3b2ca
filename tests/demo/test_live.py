"""The live replay: events through ingest into the in-process store, every order asks the
real ETA service (HTTP on loopback) at its creation time, answers joined to outcomes —
and the online evaluation equals the offline one of the same model on the same orders."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from arrive.demo import live, report
from arrive.models.artifact import ModelBundle
from arrive.monitoring import outcome
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
    assert "agree within 1%" in html
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
