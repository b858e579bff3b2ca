"""The HTML evaluation report: self-contained, one plot per figure, escaped, honest about splits."""

from __future__ import annotations

import re
import stat
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from arrive.errors import ConfigError, DataError
from arrive.training.evaluate import EvalInput, Evaluation, evaluate
from arrive.training.report import RANDOM_SPLIT_LABEL, render_report, write_report

EVIL = '<script>alert("x")</script>'
QUANTILES = (0.1, 0.5, 0.9)


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    rng = np.random.default_rng(7)
    n = 240
    base = rng.uniform(1200, 3600, n)
    y = base * rng.lognormal(0, 0.2, n)
    model = np.column_stack([base * f for f in (0.8, 1.0, 1.3)])
    heuristic = np.tile([1500.0, 2400.0, 3300.0], (n, 1))
    start = datetime(2015, 2, 11, tzinfo=UTC)
    times = [start + timedelta(minutes=37 * i) for i in range(n)]
    segments = {
        "market": rng.choice(["1", "2", "3"], n),
        EVIL: rng.choice(["x", EVIL], n),
        "store": np.array([f"store-{i % 40}" for i in range(n)]),
    }
    return evaluate(EvalInput(y, model, heuristic, QUANTILES, times, segments))


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    start = datetime(2015, 2, 11, tzinfo=UTC)
    return pl.DataFrame(
        {
            "created_at": [start + timedelta(hours=i) for i in range(30)],
            "y_true_s": np.linspace(1200, 3000, 30),
            "p50_s": np.linspace(1300, 2800, 30)[::-1],
            "p90_s": np.linspace(2000, 3600, 30)[::-1],
        }
    )


def _render(evaluation: Evaluation, band: pl.DataFrame, **changes: Any) -> str:
    arguments: dict[str, Any] = {
        "title": "DoorDash ETA v1",
        "evaluation": evaluation,
        "feature_importance": {f"feature_{i}": float(i) for i in range(25)},
        "sample": band,
        "reliability": {0.1: 0.12, 0.5: 0.49, 0.9: 0.88},
        "context": {"split": "time-based, last week held out", "n_train": "1,000"},
        "notes": ["calibrated on the last 3 days"],
    }
    return render_report(**(arguments | changes))


@pytest.fixture(scope="module")
def html(evaluation: Evaluation, sample: pl.DataFrame) -> str:
    return _render(evaluation, sample)


def test_report_is_self_contained(html: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//|@import", html, re.I)
    assert "<script" not in html
    assert "<link" not in html
    assert "http://" not in html
    assert "https://" not in html


def test_one_svg_per_plot(html: str) -> None:
    # reliability, MAE by hour, P50-P90 band, feature importance, one per segment (3)
    assert html.count("<svg") == 7
    assert html.count("</svg>") == 7


def test_svg_ids_are_unique_across_the_page(html: str) -> None:
    ids = Counter(re.findall(r'\bid="([^"]+)"', html))
    assert ids
    assert [name for name, count in ids.items() if count > 1] == []


def test_headline_numbers_are_shown_in_minutes(html: str, evaluation: Evaluation) -> None:
    assert f"{evaluation.model.mae_s / 60:.1f} min" in html
    assert f"{evaluation.heuristic.mae_s / 60:.1f} min" in html
    assert f"{evaluation.model.at(0.9).coverage * 100:.1f} %" in html
    assert f"{evaluation.model.late_rate * 100:.1f} %" in html
    improvement = evaluation.mae_improvement
    assert improvement is not None
    assert f"{abs(improvement):.1%} {'lower' if improvement > 0 else 'higher'}" in html
    assert f"{evaluation.model.n:,}" in html


@pytest.fixture(scope="module")
def hostile_html(evaluation: Evaluation, sample: pl.DataFrame) -> str:
    return _render(
        evaluation,
        sample,
        title=EVIL,
        context={EVIL: EVIL, "split": "random 80/20"},
        notes=[EVIL],
        feature_importance={EVIL: 1.0},
    )


def test_caller_text_is_escaped(hostile_html: str) -> None:
    assert "<script" not in hostile_html
    assert "&lt;script&gt;" in hostile_html
    assert hostile_html.count("<svg") == 7


def test_random_split_is_labelled(hostile_html: str) -> None:
    assert f"random 80/20 ({RANDOM_SPLIT_LABEL})" in hostile_html
    assert "Random split, for comparison with published work only" in hostile_html


def test_time_split_is_not_labelled_random(html: str) -> None:
    assert RANDOM_SPLIT_LABEL not in html
    assert "time-based, last week held out" in html


def test_report_without_importance_says_so(evaluation: Evaluation, sample: pl.DataFrame) -> None:
    page = _render(evaluation, sample, feature_importance={}, reliability=None, context={})

    assert page.count("<svg") == 6
    assert "split kind is not stated" in page


def test_write_report_writes_one_readable_file(
    tmp_path: Path, evaluation: Evaluation, sample: pl.DataFrame
) -> None:
    target = tmp_path / "reports" / "report.html"
    written = write_report(
        target,
        title="t",
        evaluation=evaluation,
        feature_importance={"a": 1.0},
        sample=sample,
    )

    assert written == target
    assert target.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert target.stat().st_mode & stat.S_IRGRP
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_write_report_refuses_a_directory(
    tmp_path: Path, evaluation: Evaluation, sample: pl.DataFrame
) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        write_report(
            tmp_path, title="t", evaluation=evaluation, feature_importance={}, sample=sample
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sample": pl.DataFrame({"y_true_s": [1.0]})}, r"sample: missing column\(s\)"),
        ({"feature_importance": {"a": float("nan")}}, r"feature_importance\['a'\]"),
        ({"feature_importance": {"a": -1.0}}, r"feature_importance\['a'\]"),
        ({"reliability": {0.9: 1.5}}, r"reliability\[0.9\]"),
    ],
)
def test_bad_report_inputs_are_refused(
    evaluation: Evaluation, sample: pl.DataFrame, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        _render(evaluation, sample, **changes)


def test_nan_in_the_sample_is_refused(evaluation: Evaluation, sample: pl.DataFrame) -> None:
    bad = sample.with_columns(
        pl.when(pl.int_range(pl.len()) < 2).then(float("nan")).otherwise("p90_s").alias("p90_s")
    )

    with pytest.raises(DataError, match=r"sample: 2 of 30 rows"):
        _render(evaluation, bad)


def test_rendering_is_deterministic(
    html: str, evaluation: Evaluation, sample: pl.DataFrame
) -> None:
    assert _render(evaluation, sample) == html


def test_extra_sections_follow_the_headline_table(
    evaluation: Evaluation, sample: pl.DataFrame
) -> None:
    from arrive.training import plots
    from arrive.training.report import figure_html

    latency = np.array([0.8, 1.0, 1.1, 1.3, 2.0, 9.0])
    extra = "<section><h2>Latency</h2>" + figure_html(plots.latency_svg("lat", latency), "rt")
    html = _render(evaluation, sample, extra_sections=[extra + "</section>"])
    assert html.index("Model vs heuristic") < html.index("<h2>Latency</h2>")
    assert html.index("<h2>Latency</h2>") < html.index("Calibration")
    assert 'aria-label="Latency of ETA requests"' in html
    assert "p99 " in html
