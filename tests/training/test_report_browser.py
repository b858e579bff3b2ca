"""Both HTML reports (training and live replay) open in headless Chromium without console
errors and without horizontal overflow at a desktop and a narrow width.

The screenshots are kept for a person to look at: the test prints where (under
``.arrive/test-artifacts/reports/`` of the repository, ignored by git).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from arrive.demo.report import replay_note, write_live_report
from arrive.evaluation import EvalInput, Evaluation, evaluate
from arrive.monitoring.outcome import ANSWER_SCHEMA, Agreement, LiveOutcome
from arrive.training.report import write_report

ARTIFACTS_NAME = "reports"
"""Screenshots go to ``.arrive/test-artifacts/reports/`` (the ``artifacts`` fixture)."""
WIDTHS = (1280, 800)
ZONE = "Asia/Kolkata"


def _orders(n: int = 1500, seed: int = 3) -> dict[str, Any]:
    """Realistic test orders: lunch and dinner peaks, a few lone night orders, one market
    with two orders, a long tail of durations."""
    rng = np.random.default_rng(seed)
    start = datetime(2022, 3, 30, 3, 0, tzinfo=UTC)
    peaks = rng.choice([7.0, 14.5], n - 3) + rng.normal(0, 1.5, n - 3)
    hours = np.concatenate([np.clip(peaks, 5.0, 17.5), [20.2, 20.6, 21.1]])
    days = rng.integers(0, 6, n)
    created = [
        start + timedelta(days=int(d), hours=float(h)) for d, h in zip(days, hours, strict=True)
    ]
    distance = rng.gamma(2.5, 3.0, n)
    base = 900 + 160 * distance + rng.normal(0, 120, n)
    y = base * rng.lognormal(0, 0.18, n)
    p50 = base * 1.01
    p90 = base * 1.27
    markets = np.where(np.arange(n) < 2, "tiny", rng.choice(["Metropolitan", "Urban"], n))
    return {
        "y": y,
        "model": np.column_stack([p50, p90]),
        "heuristic": np.tile([np.median(y), np.quantile(y, 0.9)], (n, 1)),
        "created": created,
        "distance": distance,
        "segments": {
            "local hour": pl.Series([f"{t.astimezone(ZoneInfo(ZONE)).hour:02d}" for t in created]),
            "market": markets,
        },
    }


@pytest.fixture(scope="module")
def orders() -> dict[str, Any]:
    return _orders()


@pytest.fixture(scope="module")
def evaluation(orders: dict[str, Any]) -> Evaluation:
    return evaluate(
        EvalInput(
            orders["y"],
            orders["model"],
            orders["heuristic"],
            (0.5, 0.9),
            orders["created"],
            orders["segments"],
        )
    )


@pytest.fixture(scope="module")
def pages(
    tmp_path_factory: pytest.TempPathFactory, orders: dict[str, Any], evaluation: Evaluation
) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reports")
    sample = pl.DataFrame(
        {
            "created_at": orders["created"],
            "y_true_s": orders["y"],
            "p50_s": orders["model"][:, 0],
            "p90_s": orders["model"][:, 1],
            "distance_km": orders["distance"],
        }
    )
    training = write_report(
        folder / "training.html",
        title="Arrive — ETA model evaluation",
        evaluation=evaluation,
        feature_importance={f"feature_with_a_long_name_{i}": float(30 - i) for i in range(25)},
        sample=sample,
        context={
            "split": "time-based (train on earlier orders, calibrate on the next, test on the"
            " latest)",
            "data range": "2022-02-10T18:30:00+00:00 → 2022-04-06T18:25:00+00:00",
            "orders": "train 30,594 · valid 4,371 · calib 4,370 · test 6,556",
            "local time zone": ZONE,
        },
        notes=["feature group 'weather' (built from weather events) not built: none here"],
        timezone=ZONE,
        loss_curves={
            0.5: ("l2", list(1e5 / np.arange(1, 181) + 4e4)),
            0.9: ("quantile", list(400 / np.sqrt(np.arange(1, 241)) + 60)),
        },
        run_details={
            "model parameters": '{"learning_rate": 0.05, "n_estimators": 2000, "num_leaves": 63}',
            "features used": "12: " + ", ".join(f"feature_{i}" for i in range(12)),
            "source data sha256": "12b0997f181cf71bda3b0b68204b18e35b17bd89" * 2,
        },
    )
    live = write_live_report(
        folder / "live.html",
        _outcome(orders, evaluation),
        facts={"model version": "1", "split": "time-based", "orders sent": "1,504"},
        feature_importance={"distance_km": 3.0, "hour": 1.0},
        timezone=ZONE,
        notes=[replay_note(1504, 1500, 1496, orders["created"][0])],
    )
    return {"training": training, "live": live}


def _outcome(orders: dict[str, Any], evaluation: Evaluation) -> LiveOutcome:
    n = len(orders["y"])
    rng = np.random.default_rng(5)
    latency = rng.lognormal(0.3, 0.35, n)
    answers = pl.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "created_at": orders["created"],
            "p50_s": orders["model"][:, 0],
            "p90_s": orders["model"][:, 1],
            "fallback": [None] * (n - 5) + ["cold_start"] * 5,
            "model_version": ["1"] * n,
            "latency_ms": latency,
        },
        schema=ANSWER_SCHEMA,
    ).with_columns(duration_s=pl.Series(orders["y"]))
    mae = evaluation.model.mae_s
    coverage = evaluation.model.at(0.9).coverage
    return LiveOutcome(
        answers=answers,
        evaluation=evaluation,
        agreement=Agreement(n, mae, mae, coverage, coverage, 0.0),
        latency_ms={"p50": 1.4, "p90": 2.1, "p99": 3.3, "p99.9": 5.0},
        fallbacks={"model": n - 5, "cold_start": 5},
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["training", "live"])
def test_report_renders_cleanly_in_chromium(
    browser: Any, pages: dict[str, Path], artifacts: Path, name: str, width: int
) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith("file:") else problems.append(r.url))
    page.goto(pages[name].as_uri())
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    layout = page.evaluate(_LAYOUT)
    page.screenshot(path=str(artifacts / f"{name}-{width}.png"), full_page=True)
    page.close()

    assert problems == []
    assert layout["scrollWidth"] <= layout["innerWidth"], layout
    assert layout["overflowing"] == [], "elements wider than their section"
    # Text inside a chart is drawn at 12.7 px when a chart shows at its natural width;
    # charts must not shrink so far that it drops under 9 px.
    assert layout["smallestChartScale"] >= 9 / 12.7, layout


_LAYOUT = """() => {
  const sections = [...document.querySelectorAll('section')];
  const overflowing = sections
    .filter(s => s.scrollWidth > s.clientWidth + 1)
    .map(s => (s.querySelector('h2') || s).textContent.slice(0, 60));
  const scales = [...document.querySelectorAll('figure svg')].map(svg => {
    const box = svg.viewBox.baseVal;
    return svg.getBoundingClientRect().width / (box.width * 96 / 72);
  });
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    overflowing,
    smallestChartScale: Math.min(...scales),
  };
}"""
