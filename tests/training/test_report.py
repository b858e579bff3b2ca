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
from arrive.evaluation import EvalInput, Evaluation, evaluate
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
        "run_details": {"model parameters": '{"num_leaves": 63}'},
        "loss_curves": {0.5: ("l2", [9.0, 4.0, 3.0, 3.5]), 0.9: ("quantile", [5.0, 2.0, 2.2])},
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
    # reliability, coverage by predicted P90, MAE by hour, by day, scatter, residuals,
    # by duration, P50-P90 band, feature importance, one per segment (3), loss curves
    assert html.count("<svg") == 13
    assert html.count("</svg>") == 13


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
        run_details={EVIL: EVIL},
    )


def test_caller_text_is_escaped(hostile_html: str) -> None:
    assert "<script" not in hostile_html
    assert "&lt;script&gt;" in hostile_html
    assert hostile_html.count("<svg") == 13


def test_random_split_is_labelled(hostile_html: str) -> None:
    assert f"random 80/20 ({RANDOM_SPLIT_LABEL})" in hostile_html
    assert "Random split, for comparison with published work only" in hostile_html


def test_time_split_is_not_labelled_random(html: str) -> None:
    assert RANDOM_SPLIT_LABEL not in html
    assert "time-based, last week held out" in html


def test_report_without_importance_says_so(evaluation: Evaluation, sample: pl.DataFrame) -> None:
    page = _render(evaluation, sample, feature_importance={}, reliability=None, context={})

    assert page.count("<svg") == 12
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


# -- what the colours and labels say ---------------------------------------------------------


def _target_evaluation(covered: int, n: int = 1000) -> Evaluation:
    """``covered`` of ``n`` actuals at or below the model's P90; the heuristic's P90 covers
    exactly 90 % and its P50 is worse than the model's. Local hours 11, 14 and 23 only."""
    y = np.arange(1.0, n + 1) * 3.0
    p90 = np.where(np.arange(n) < covered, y + 1.0, y - 1.0)
    heuristic_p90 = np.where(np.arange(n) < n * 9 // 10, y + 1.0, y - 1.0)
    model = np.column_stack([y * 1.05, p90])
    heuristic = np.column_stack([y * 1.5, heuristic_p90])
    start = datetime(2022, 3, 30, tzinfo=UTC)
    times = [start + timedelta(minutes=7 * i) for i in range(n)]
    local = np.array(["11", "14", "23"])[np.arange(n) % 3]
    return evaluate(EvalInput(y, model, heuristic, (0.5, 0.9), times, {"local hour": local}))


@pytest.fixture(scope="module")
def target_pages(sample: pl.DataFrame) -> dict[int, str]:
    return {
        covered: _render(
            _target_evaluation(covered), sample, reliability=None, timezone="Asia/Kolkata"
        )
        for covered in (907, 950, 850)
    }


def _kpi(html: str, label: str) -> str:
    start = html.index(f'<div class="label">{label}</div>')
    end = html.find('<div class="kpi">', start)
    return html[start : end if end > 0 else html.index("</section>", start)]


def test_coverage_within_its_interval_of_the_target_is_on_target(
    target_pages: dict[int, str],
) -> None:
    """90.7 % of 1,000 orders is on target: not red because the heuristic hit 90.0 % exactly."""
    page = target_pages[907]
    coverage, late = _kpi(page, "P90 coverage"), _kpi(page, "Late rate (actual &gt; P90)")

    assert '<div class="value good">90.7 %</div>' in coverage
    assert "on target" in coverage
    assert '<div class="value good">9.3 %</div>' in late
    assert "bad" not in coverage + late


def test_coverage_outside_its_interval_says_over_or_under(target_pages: dict[int, str]) -> None:
    over, under = target_pages[950], target_pages[850]

    assert "over-covered: promises later than needed" in _kpi(over, "P90 coverage")
    assert '<div class="value warn">95.0 %</div>' in over
    assert "under-covered: promises too early" in _kpi(under, "P90 coverage")
    assert '<div class="value bad">85.0 %</div>' in under


def test_an_mae_is_not_coloured_as_if_good_in_itself(target_pages: dict[int, str]) -> None:
    evaluation = _target_evaluation(907)
    mae = _kpi(target_pages[907], "MAE of P50")

    assert f'<div class="value ">{evaluation.model.mae_s / 60:,.1f} min</div>' in mae
    assert "lower than the heuristic" in mae
    low, high = evaluation.model.mae_low_s / 60, evaluation.model.mae_high_s / 60
    assert f"95 % interval {low:,.1f}–{high:,.1f} min" in mae


def test_hours_are_local_when_the_evaluation_has_local_hours(
    target_pages: dict[int, str], html: str
) -> None:
    assert "hour of day (local time, Asia/Kolkata)" in target_pages[907]
    assert "hour of day (UTC)" not in target_pages[907]
    assert "hour of day (UTC)" in html  # no local hours given: said to be UTC


def test_small_segments_are_marked_too_few(html: str, evaluation: Evaluation) -> None:
    store = evaluation.segments["store"]
    assert all(row.n < 30 for row in store)
    assert html.count('<span class="tag">too few</span>') >= len(store)
    assert "too few)" in html  # the bars' labels


def test_hour_lines_break_across_hours_without_orders() -> None:
    from arrive.training import plots

    rows = evaluate(
        EvalInput(
            [100.0] * 6,
            [[90.0, 120.0]] * 6,
            [[80.0, 130.0]] * 6,
            (0.5, 0.9),
            [datetime(2022, 3, 30, h, tzinfo=UTC) for h in (1, 2, 5, 9, 10, 11)],
        )
    ).by_hour
    svg = plots.hourly_mae_svg("h", rows)

    # one <path> per line; a break starts a new sub-path ("M") inside it
    model_line = re.search(r'<path d="([^"]+)"[^>]*stroke: #2563eb; stroke-width: [\d.]+', svg)
    assert model_line is not None
    assert model_line.group(1).count("M") == 3  # 01–02, 05, 09–11


def test_metrics_json_states_its_units(html: str) -> None:
    assert "metrics.json: durations in seconds" in html
    assert "coverages and rates as fractions from 0 to 1" in html


def test_run_details_are_listed_and_escaped(html: str, hostile_html: str) -> None:
    assert "<h2>How this model was made</h2>" in html
    assert 'aria-label="Validation loss by boosting round"' in html
    assert "best round 3" in html  # the quantile loss is lowest after round 2, l2 after 3
    assert "{&quot;num_leaves&quot;: 63}" in html
    assert "<h2>How this model was made</h2>" in hostile_html
    assert "<script" not in hostile_html


@pytest.mark.parametrize(
    ("share", "n", "target", "late", "verdict", "tone"),
    [
        (0.9074, 6556, 0.9, False, "near target: slightly over-covered (+0.7 pp)", ""),
        (0.0926, 6556, 0.1, True, "near target: slightly over-covered (+0.7 pp)", ""),
        (0.12, 10_000, 0.1, False, "over-covered: promises later than needed", "warn"),
        (0.85, 2_000, 0.9, False, "under-covered: promises too early", "bad"),
        (0.15, 2_000, 0.1, True, "under-covered: promises too early", "bad"),
        (0.91, 500, 0.9, False, "on target (the 95 % interval holds it)", "good"),
    ],
)
def test_target_verdicts(
    share: float, n: int, target: float, late: bool, verdict: str, tone: str
) -> None:
    from arrive.training.report import _target_verdict

    assert _target_verdict(share, n, target, late=late) == (verdict, tone)
