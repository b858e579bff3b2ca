"""The drift demo's HTML report and its console lines.

The page is the evaluation report of :mod:`arrive.training.report` on every served day
(each day scored with the model that was production that day, and its heuristic), with a
section first: MAE and P90 coverage per day of production, its heuristic and the newest
retrained model, the drift marked, each retrain's decision and reason, and the recovery
figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from arrive import charts
from arrive.demo.retrain_drift import (
    RECOVERY_DAYS,
    RECOVERY_TOLERANCE,
    ROLLOUT_NOTE,
    DayResult,
    DriftDemo,
    Recovery,
    Scores,
    served_days,
)
from arrive.evaluation import EvalInput, evaluate
from arrive.training.report import figure_html, write_report

LATEST_COLOR: Final = "#16a34a"
DRIFT_COLOR: Final = charts.LATE_COLOR


def write_drift_report(path: Path, demo: DriftDemo) -> Path:
    """Write the report (see the module docstring) to ``path``."""
    served = list(served_days(demo))
    ts = demo.training_set
    rows, pred, heuristic = _served_predictions(demo, served)
    orders = ts.orders[rows]
    created = orders.get_column("created_at")
    drift_day = demo.recovery.drift_day
    day_index = (created.dt.date() - demo.days[0].date).dt.total_days().to_numpy()
    phase = pl.Series(np.where(day_index >= drift_day, "after the drift", "before the drift"))
    last = demo.bundles[served[-1].production_version or ""]
    evaluation = evaluate(
        EvalInput(
            y_true_s=ts.target_s[rows],
            pred_s=pred,
            heuristic_s=heuristic,
            quantiles=last.model.quantiles_,
            created_at=created,
            segments={"drift": phase, "day": created.dt.date().cast(pl.String)},
        )
    )
    sample = pl.DataFrame(
        {
            "created_at": orders.get_column("created_at"),
            "y_true_s": ts.target_s[rows],
            "p50_s": pred[:, 0],
            "p90_s": pred[:, -1],
        }
    )
    scenario = demo.scenario
    facts = {
        "split": "time-based: each day scored with the model that was production that day",
        "scenario": f"{scenario.days} simulated days, {scenario.orders_per_day:,} orders a day, "
        f"rides {scenario.travel_slowdown:.0%} slower from day {drift_day}",
        "days scored": f"{served[0].date} → {served[-1].date} ({len(served)} days)",
        "retrains": f"{sum(d.outcome is not None for d in demo.days)}, one at the end of each "
        f"day from day {scenario.first_retrain_day - 1} to the day before the last",
        "registry": str(demo.registry_dir),
        "what a retrain registers": _final_fit_fact(scenario.retrain.final_fit),
    }
    return write_report(
        path,
        title="Arrive — daily retraining through a drift",
        evaluation=evaluation,
        feature_importance=last.model.feature_importance(),
        sample=sample,
        context=facts,
        notes=[ROLLOUT_NOTE, _features_note()],
        extra_sections=[daily_section(demo)],
        timezone=ts.local_timezone,
    )


def _final_fit_fact(policy: str) -> str:
    if policy in ("held-out", "evaluated"):
        return f"the evaluated model (final_fit {policy})"
    trees = "every order" if policy == "all" else "every order before the last calibration window"
    return (
        f"a winner's final fit (final_fit {policy}): trained again on {trees}, shift and scales "
        "found on that window by the fit before it; its test figures in the registry are the "
        "evaluated fit's"
    )


def _served_predictions(
    demo: DriftDemo, served: Sequence[DayResult]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Rows of the served days, each predicted by the day's production and its heuristic."""
    ts = demo.training_set
    dates = ts.orders.get_column("created_at").dt.date()
    parts = []
    for day in served:
        bundle = demo.bundles[day.production_version or ""]
        rows = np.flatnonzero((dates == day.date).to_numpy())
        frame = ts.features.frame[rows].select(bundle.model.features_)
        parts.append((rows, bundle.model.predict(frame), bundle.heuristic.predict(ts.orders[rows])))
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _features_note() -> str:
    return (
        "features of every day are built once over the whole event log: point-in-time, so "
        "the same values the day's service would have read"
    )


def daily_section(demo: DriftDemo) -> str:
    """Plots and table of the days, and the recovery figure."""
    days = demo.days
    drift = demo.recovery.drift_day
    mae = charts.render(
        "drift-mae",
        "P50 MAE per day",
        lambda fig: _mae_plot(fig, days, drift),
        (charts.FULL_WIDTH_IN, 3.0),
    )
    coverage = charts.render(
        "drift-coverage",
        "P90 coverage per day",
        lambda fig: _coverage_plot(fig, days, drift),
        (charts.FULL_WIDTH_IN, 2.6),
    )
    rows = "".join(_row(d, drift) for d in days)
    return (
        "<section><h2>Day by day: production, the heuristic and the daily retrain</h2>"
        f"<p>{escape(recovery_text(demo))}</p>"
        + figure_html(mae, "P50 MAE per day; the red line marks the drift's first day.")
        + figure_html(coverage, "P90 coverage per day (target 90 %).")
        + "<table><tr><th>day</th><th>date</th><th>orders</th><th>production</th>"
        "<th>MAE</th><th>P90 cov.</th><th>heuristic MAE</th><th>heuristic cov.</th>"
        "<th>newest model MAE</th><th>retrain at the day's end</th></tr>"
        f"{rows}</table></section>"
    )


def recovery_text(demo: DriftDemo) -> str:
    """The figure in one sentence."""
    rec = demo.recovery
    pre_days = ", ".join(map(str, rec.pre_days))
    post = ", ".join(f"day {d} {v / 60:.2f}" for d, v in rec.post_mae_s.items())
    relative = ", ".join(f"day {d} {v:.1%}" for d, v in rec.post_relative.items())
    bound = 1 + RECOVERY_TOLERANCE
    return (
        f"Pre-drift level: production's P50 MAE {rec.pre_level_s / 60:.2f} min (mean of days "
        f"{pre_days}; {rec.pre_relative:.1%} of the mean delivery time). From the drift (day "
        f"{rec.drift_day}) on, in min: {post}. Bound +{RECOVERY_TOLERANCE:.0%}: "
        f"{rec.pre_level_s * bound / 60:.2f} min; {_verdict(rec.recovered_day, rec)}. "
        f"Recovery within {RECOVERY_DAYS} days, in minutes (the figure): "
        f"{'met' if rec.within else 'missed'}. Relative to the mean delivery time: "
        f"{relative}; bound {rec.pre_relative * bound:.1%}; "
        f"{_verdict(rec.recovered_day_relative, rec)}; within {RECOVERY_DAYS} days: "
        f"{'met' if rec.within_relative else 'missed'}."
    )


def _verdict(recovered: int | None, rec: Recovery) -> str:
    if recovered is None:
        return "never within it in the days simulated"
    after = recovered - rec.drift_day
    return f"within it from day {recovered} ({after} days after the drift began)"


def console_lines(demo: DriftDemo) -> list[str]:
    """One line per day, then the figure."""
    return [*(_line(d, demo.recovery.drift_day) for d in demo.days), recovery_text(demo)]


def _line(day: DayResult, drift: int) -> str:
    mark = "drift" if day.day == drift else ("after" if day.drifted else "     ")
    served = "no model yet"
    if day.production is not None and day.heuristic is not None:
        served = (
            f"production {day.production_version}: MAE {_min(day.production)} "
            f"P90 cov {day.production.p90_coverage:.1%} | heuristic {_min(day.heuristic)} "
            f"{day.heuristic.p90_coverage:.1%}"
        )
    return f"day {day.day:2d} {day.date} {mark} {day.orders:6,} orders  {served}  {_decision(day)}"


def _decision(day: DayResult) -> str:
    if day.outcome is None:
        return "| no retrain"
    version = f" {day.outcome.version}" if day.outcome.version else ""
    return f"| retrain{version}: {day.outcome.status} ({day.outcome.reason})"


def _min(scores: Scores) -> str:
    return f"{scores.mae_s / 60:.2f} min"


def _row(day: DayResult, drift: int) -> str:
    def cell(s: Scores | None, coverage: bool = False) -> str:
        if s is None:
            return "<td>—</td>"
        return f"<td>{s.p90_coverage:.1%}</td>" if coverage else f"<td>{_min(s)}</td>"

    decision = "—" if day.outcome is None else f"{day.outcome.status}: {day.outcome.reason}"
    style = f' style="border-top:2px solid {DRIFT_COLOR}"' if day.day == drift else ""
    return (
        f"<tr{style}><td>{day.day}{' (drift)' if day.drifted else ''}</td><td>{day.date}</td>"
        f"<td>{day.orders:,}</td><td>{escape(day.production_version or '—')}</td>"
        f"{cell(day.production)}{cell(day.production, True)}{cell(day.heuristic)}"
        f"{cell(day.heuristic, True)}{cell(day.latest)}<td>{escape(decision)}</td></tr>"
    )


def _series(days: Sequence[DayResult], pick: str, attr: str) -> list[float]:
    out = []
    for d in days:
        scores = getattr(d, pick)
        out.append(float("nan") if scores is None else getattr(scores, attr) * _scale(attr))
    return out


def _scale(attr: str) -> float:
    return 1 / 60 if attr == "mae_s" else 100.0


def _lines(ax: Axes, days: Sequence[DayResult], attr: str, drift: int) -> None:
    x = [d.day for d in days]
    ax.plot(
        x, _series(days, "production", attr), "o-", color=charts.MODEL_COLOR, label="production"
    )
    ax.plot(
        x, _series(days, "heuristic", attr), "s--", color=charts.HEURISTIC_COLOR, label="heuristic"
    )
    ax.plot(
        x, _series(days, "latest", attr), ".:", color=LATEST_COLOR, label="newest retrained model"
    )
    ax.axvline(drift - 0.5, color=DRIFT_COLOR, linewidth=1.2)
    ax.annotate(
        "drift",
        (drift - 0.45, 1.0),
        xycoords=("data", "axes fraction"),
        color=DRIFT_COLOR,
        va="top",
    )
    ax.set_xlabel("day")
    ax.set_xticks(x)
    charts.legend_above(ax, 3)


def _mae_plot(fig: Figure, days: Sequence[DayResult], drift: int) -> None:
    ax = fig.add_subplot()
    _lines(ax, days, "mae_s", drift)
    ax.set_ylabel("P50 MAE (min)")


def _coverage_plot(fig: Figure, days: Sequence[DayResult], drift: int) -> None:
    ax = fig.add_subplot()
    _lines(ax, days, "p90_coverage", drift)
    ax.axhline(90, color=charts.MUTED, linewidth=0.8, linestyle="--")
    ax.set_ylabel("P90 coverage (%)")
