"""The self-contained HTML evaluation report of a trained ETA model.

One file a person opens in a browser: inline CSS, plots as inline SVG (see
:mod:`arrive.training.plots`), no script and no external resource. Durations are
shown in minutes (the JSON beside it keeps seconds). Every caller-supplied text
is HTML-escaped.

:func:`render_report` builds the page (pure); :func:`write_report` writes it
atomically.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import ConfigError, DataError
from arrive.evaluation import Evaluation, SegmentRow, SideMetrics, metrics_json
from arrive.training import diagnostics, plots
from arrive.training.diagnostics import coverage_status, wilson_interval

__all__ = [
    "BAND_COLUMNS",
    "RANDOM_SPLIT_LABEL",
    "figure_html",
    "render_report",
    "write_report",
]

BAND_COLUMNS: Final = ("created_at", "y_true_s", "p50_s", "p90_s")
RANDOM_SPLIT_LABEL: Final = "random split, for comparison with published work only"
BAND_MAX_ROWS: Final = 400
SEGMENT_PLOT_VALUES: Final = 12
SEGMENT_TABLE_ROWS: Final = 50
NEAR_TARGET_PP: Final = 1.0
"""A coverage outside its 95 % interval of the target but within this many percentage
points of it is shown as near target, in neutral ink: detectable with thousands of
orders, too small to change a promise."""
LOCAL_HOUR: Final = "local hour"
"""The segment whose rows draw the hour-of-day chart (in the marketplace's local time)."""
FloatArray = npt.NDArray[np.float64]
_COVERAGE_KEY: Final = " Red dashed line: the 90 % coverage target; whiskers are 95 % intervals."
BandOrder = Literal["p50", "time"]


def write_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    evaluation: Evaluation,
    feature_importance: Mapping[str, float],
    sample: pl.DataFrame,
    reliability: Mapping[float, float] | None = None,
    context: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    band_order: BandOrder = "p50",
    extra_sections: Sequence[str] = (),
    timezone: str = "UTC",
    run_details: Mapping[str, str] | None = None,
    loss_curves: Mapping[float, tuple[str, Sequence[float]]] | None = None,
) -> Path:
    """Write the report to ``path`` atomically (a reader never sees half a file).

    Arguments are those of :func:`render_report`. Missing parent folders are created.

    Returns:
        The path written.

    Raises:
        ConfigError: ``path`` is a directory.
        DataError: as :func:`render_report`.
    """
    if Path(path).is_dir():  # refused before the (slow) rendering
        raise ConfigError(f"{path}: is a directory, expected a report file path")
    html = render_report(
        title=title,
        evaluation=evaluation,
        feature_importance=feature_importance,
        sample=sample,
        reliability=reliability,
        context=context,
        notes=notes,
        band_order=band_order,
        extra_sections=extra_sections,
        timezone=timezone,
        run_details=run_details,
        loss_curves=loss_curves,
    )
    return _write_atomic(Path(path), html)


def render_report(
    *,
    title: str,
    evaluation: Evaluation,
    feature_importance: Mapping[str, float],
    sample: pl.DataFrame,
    reliability: Mapping[float, float] | None = None,
    context: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    band_order: BandOrder = "p50",
    extra_sections: Sequence[str] = (),
    timezone: str = "UTC",
    run_details: Mapping[str, str] | None = None,
    loss_curves: Mapping[float, tuple[str, Sequence[float]]] | None = None,
) -> str:
    """The report as one HTML document.

    Args:
        title: the page title (any text; escaped).
        evaluation: the result of :func:`arrive.evaluation.evaluate`.
        feature_importance: gain per feature name; the 20 largest are drawn. May be empty.
        sample: the test orders with the columns ``created_at``, ``y_true_s``,
            ``p50_s``, ``p90_s`` (seconds) and optionally ``distance_km``: the
            breakdowns by day, distance, duration and predicted P90, the scatter and
            the residuals are computed from it; the P50–P90 band plot draws at most
            400 rows, evenly spaced in the plot's order.
        reliability: observed coverage per nominal quantile (``{0.5: 0.51, ...}``);
            defaults to the evaluated quantiles' coverage.
        context: key facts shown at the top, in order (split, data range, n_train,
            model version, training time, ...). A ``split`` entry mentioning
            "random" is labelled as a comparison-only random split.
        notes: free-text remarks listed at the end.
        band_order: order of the band plot's orders: by P50 or by creation time.
        extra_sections: trusted HTML ``<section>`` elements shown after the headline
            table (built by Arrive itself, e.g. the live replay's latency; not escaped).
        timezone: the marketplace's zone, for local days (hours come from the
            evaluation's ``local hour`` segment when it has one).
        run_details: how the model was made (parameters, iterations, versions, data
            hash), shown as a table near the end.
        loss_curves: per quantile, the validation metric's name and its value after
            each boosting round, drawn beside the run details.

    Raises:
        DataError: the sample lacks a column or has a null / NaN value; an importance
            or reliability value is not finite or out of range.
    """
    facts = dict(context or {})
    # Validate everything before drawing anything.
    coverage = _reliability(evaluation, reliability)
    test = _test_rows(sample)
    band = _band_rows(test, band_order)
    importance = _importance(feature_importance)
    sections = [
        _header(title, facts),
        _kpis(evaluation, facts),
        _headline_section(evaluation),
        *extra_sections,
        _calibration_section(evaluation, coverage, test),
        _time_section(evaluation, test, timezone),
        _errors_section(test),
        _band_section(band, band_order),
        _segments_section(evaluation),
        _importance_section(importance),
        _run_section(run_details or {}, loss_curves or {}),
        _notes_section(notes),
        _json_section(evaluation),
    ]
    return _page(title, "\n".join(s for s in sections if s))


# -- validation ----------------------------------------------------------------------------


def _reliability(
    evaluation: Evaluation, reliability: Mapping[float, float] | None
) -> dict[float, float]:
    if reliability is None:
        return {m.quantile: m.coverage for m in evaluation.model.quantiles}
    for nominal, observed in reliability.items():
        if not (0 < nominal < 1 and math.isfinite(observed) and 0 <= observed <= 1):
            raise DataError(
                f"reliability[{nominal!r}] = {observed!r}: nominal must be in (0, 1)"
                " and observed coverage in [0, 1]"
            )
    return dict(reliability)


def _importance(importance: Mapping[str, float]) -> dict[str, float]:
    for name, gain in importance.items():
        if not (math.isfinite(gain) and gain >= 0):
            raise DataError(
                f"feature_importance[{name!r}] = {gain!r}: gain must be finite and >= 0"
            )
    return dict(importance)


def _test_rows(sample: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in BAND_COLUMNS if c not in sample.columns]
    if missing:
        raise DataError(f"sample: missing column(s) {missing}; expected {list(BAND_COLUMNS)}")
    rows = sample.select(BAND_COLUMNS)
    bad = rows.select(pl.any_horizontal(pl.all().is_null()) | _nan(rows)).to_series()
    if bad.any():
        raise DataError(f"sample: {bad.sum()} of {len(rows)} rows have a null or NaN value")
    if "distance_km" in sample.columns:
        distance = sample.get_column("distance_km").cast(pl.Float64).fill_null(float("nan"))
        rows = rows.with_columns(distance)
    return rows


def _band_rows(rows: pl.DataFrame, order: BandOrder) -> pl.DataFrame:
    rows = rows.sort("p50_s" if order == "p50" else "created_at", maintain_order=True)
    if len(rows) <= BAND_MAX_ROWS:
        return rows
    return rows[np.linspace(0, len(rows) - 1, BAND_MAX_ROWS).round().astype(np.int64)]


def _nan(rows: pl.DataFrame) -> pl.Expr:
    return pl.any_horizontal(pl.col(c).cast(pl.Float64).is_nan() for c in BAND_COLUMNS[1:])


# -- sections ------------------------------------------------------------------------------


def _header(title: str, facts: Mapping[str, str]) -> str:
    split = _split_value(facts)
    banner = ""
    if split is None:
        banner = _banner("warn", "The split kind is not stated: read these numbers with care.")
    elif "random" in split.lower():
        banner = _banner(
            "warn",
            f"<strong>{escape(RANDOM_SPLIT_LABEL.capitalize())}.</strong> A random split leaks"
            " the future and flatters every model; judge the model on a time-based split.",
        )
    items = "".join(
        f"<div><dt>{escape(k)}</dt><dd>{escape(_fact(k, v))}</dd></div>" for k, v in facts.items()
    )
    facts_html = f'<dl class="facts">{items}</dl>' if items else ""
    return (
        f'<header><p class="eyebrow">Arrive · model evaluation</p><h1>{escape(title)}</h1>'
        f"{banner}{facts_html}</header>"
    )


def _split_value(facts: Mapping[str, str]) -> str | None:
    for key, value in facts.items():
        if key.strip().lower() in {"split", "split kind", "split_kind"}:
            return value
    return None


def _fact(key: str, value: str) -> str:
    if key.strip().lower().startswith("split") and "random" in value.lower():
        return f"{value} ({RANDOM_SPLIT_LABEL})"
    return value


def _banner(kind: str, html: str) -> str:
    return f'<p class="banner {kind}" role="note">{html}</p>'


def _kpis(evaluation: Evaluation, facts: Mapping[str, str]) -> str:
    model, heuristic = evaluation.model, evaluation.heuristic
    improvement = evaluation.mae_improvement
    cards = [
        _Card(
            "MAE of P50",
            _min(model.mae_s),
            "",
            f"95 % interval {_min_range(model.mae_low_s, model.mae_high_s)}",
            f"{_relative_text(improvement)} than the heuristic ({_min(heuristic.mae_s)})",
            _tone_relative(improvement),
        ),
        _target_card("P90 coverage", model.at(0.9).coverage, model.n, 0.9, late=False),
        _target_card("Late rate (actual > P90)", model.late_rate, model.n, 0.1, late=True),
        _Card("Test orders", f"{model.n:,}", "", _train_text(facts), "", ""),
    ]
    return '<section class="kpis">' + "".join(_card_html(card) for card in cards) + "</section>"


@dataclass(frozen=True)
class _Card:
    label: str
    value: str
    value_tone: str
    sub: str
    verdict: str
    verdict_tone: str


def _target_card(label: str, share: float, n: int, target: float, *, late: bool) -> _Card:
    low, high = wilson_interval(round(share * n), n)
    verdict, tone = _target_verdict(share, n, target, late=late)
    return _Card(
        label,
        _pct(share),
        tone,
        f"target {_pct(target, 0)} · 95 % interval {_pct_range(low, high)}",
        verdict,
        tone,
    )


def _target_verdict(share: float, n: int, target: float, *, late: bool = False) -> tuple[str, str]:
    """How a coverage, or a late rate (``late``: the complement of the P90's coverage),
    stands against its target; the text and its tone."""
    coverage, goal = (1.0 - share, 1.0 - target) if late else (share, target)
    status = coverage_status(coverage, n, goal)
    gap_pp = (coverage - goal) * 100
    if status == "on target":
        return "on target (the 95 % interval holds it)", "good"
    if abs(gap_pp) <= NEAR_TARGET_PP:
        return f"near target: slightly {status} ({gap_pp:+.1f} pp)", ""
    if status == "under-covered":
        return "under-covered: promises too early", "bad"
    return "over-covered: promises later than needed", "warn"


def _card_html(card: _Card) -> str:
    verdict = (
        f'<div class="sub {card.verdict_tone}">{escape(card.verdict)}</div>' if card.verdict else ""
    )
    return (
        f'<div class="kpi"><div class="label">{escape(card.label)}</div>'
        f'<div class="value {card.value_tone}">{escape(card.value)}</div>'
        f'<div class="sub">{escape(card.sub)}</div>{verdict}</div>'
    )


def _train_text(facts: Mapping[str, str]) -> str:
    for key, value in facts.items():
        if key.strip().lower() in {"n_train", "train orders", "training orders"}:
            return f"trained on {value}"
    return "held-out orders scored"


def _headline_section(evaluation: Evaluation) -> str:
    rows = "".join(_headline_rows(evaluation.model, evaluation.heuristic))
    return (
        '<section><h2>Model vs heuristic</h2><div class="scroll"><table class="headline">'
        '<thead><tr><th>metric</th><th class="num">model</th><th class="num">95 % interval</th>'
        '<th class="num">heuristic</th><th class="num">model vs heuristic</th>'
        f"<th>model vs target</th></tr></thead><tbody>{rows}</tbody></table></div>"
        '<p class="caption">Durations in minutes. Coverage is the share of actual delivery'
        " times at or below the prediction; ideally it equals the quantile. Late means the"
        " actual exceeded P90, the promise shown to users. Intervals: normal for the MAE,"
        " Wilson for shares; a coverage is on target when its interval holds the target,"
        " over-covered above it (promises later than needed), under-covered below it"
        " (promises too early); within 1 pp of the target it is near target.</p></section>"
    )


@dataclass(frozen=True)
class _Row:
    label: str
    model: str
    interval: str
    heuristic: str
    delta: str
    tone: str
    target: str = ""
    target_tone: str = ""


def _headline_rows(model: SideMetrics, heuristic: SideMetrics) -> list[str]:
    rows = [
        _error_row(
            "MAE of P50",
            model.mae_s,
            heuristic.mae_s,
            interval=_min_range(model.mae_low_s, model.mae_high_s),
        ),
        _error_row("RMSE of P50", model.rmse_s, heuristic.rmse_s),
    ]
    rows += [
        _error_row(f"Pinball loss P{_q(m.quantile)}", m.pinball_s, h.pinball_s, digits=2)
        for m, h in zip(model.quantiles, heuristic.quantiles, strict=True)
    ]
    rows += [
        _share_row(
            f"Coverage P{_q(m.quantile)} (target {_pct(m.quantile, 0)})",
            m.coverage,
            h.coverage,
            model.n,
            m.quantile,
        )
        for m, h in zip(model.quantiles, heuristic.quantiles, strict=True)
    ]
    rows += [
        _share_row(
            "Late rate: actual > P90 (target 10 %)",
            model.late_rate,
            heuristic.late_rate,
            model.n,
            0.1,
            late=True,
        ),
        _Row(
            "Mean width P90 − P50",
            _min(model.width_s),
            "",
            _min(heuristic.width_s),
            _relative_change(model.width_s, heuristic.width_s),
            "",
        ),
        _Row(
            "Quantile crossings (rows)",
            f"{model.crossings:,}",
            "",
            f"{heuristic.crossings:,}",
            "",
            "",
            "none" if model.crossings == 0 else "some rows cross",
            "good" if model.crossings == 0 else "bad",
        ),
        _Row("Test orders", f"{model.n:,}", "", f"{heuristic.n:,}", "", ""),
    ]
    return [_row_html(row) for row in rows]


def _error_row(
    label: str, model_s: float, heuristic_s: float, digits: int = 1, interval: str = ""
) -> _Row:
    improvement = (heuristic_s - model_s) / heuristic_s if heuristic_s else None
    return _Row(
        label,
        _min(model_s, digits),
        interval,
        _min(heuristic_s, digits),
        _relative_text(improvement),
        _tone_relative(improvement),
    )


def _share_row(
    label: str, model: float, heuristic: float, n: int, target: float, *, late: bool = False
) -> _Row:
    low, high = wilson_interval(round(model * n), n)
    verdict, tone = _target_verdict(model, n, target, late=late)
    return _Row(
        label,
        _pct(model),
        _pct_range(low, high),
        _pct(heuristic),
        f"{(model - heuristic) * 100:+.1f} pp",
        "",
        verdict.split(" (")[0],
        tone,
    )


def _row_html(row: _Row) -> str:
    return (
        f"<tr><td>{escape(row.label)}</td><td class='num strong'>{escape(row.model)}</td>"
        f"<td class='num muted'>{escape(row.interval)}</td>"
        f"<td class='num'>{escape(row.heuristic)}</td>"
        f"<td class='num {row.tone}'>{escape(row.delta)}</td>"
        f"<td class='{row.target_tone}'>{escape(row.target)}</td></tr>"
    )


def _calibration_section(
    evaluation: Evaluation, reliability: Mapping[float, float], test: pl.DataFrame
) -> str:
    heuristic = {m.quantile: m.coverage for m in evaluation.heuristic.quantiles}
    y, p50, p90 = _arrays(test)
    labels, order = diagnostics.p90_bands(p90)
    bands = diagnostics.breakdown(y, p50, p90, labels, order)
    return (
        '<section><h2>Calibration</h2><div class="grid2">'
        + _figure(
            plots.reliability_svg("reliability", reliability, heuristic),
            "Observed coverage per nominal quantile, overall. On the dashed diagonal, P90 covers"
            " 90 % of orders; below it, the quantile is too optimistic.",
        )
        + _figure(
            plots.bands_svg(
                "calib",
                "By predicted P90",
                bands,
                "predicted P90, minutes (about equal-count bands)",
            ),
            "The model's P90 coverage within bands of its own P90 prediction: a calibrated model"
            " covers about 90 % in every band, not only on average. Bars above: MAE of P50 per"
            " band with its 95 % interval; diamonds: bias (actual − P50)." + _COVERAGE_KEY,
        )
        + "</div></section>"
    )


def _time_section(evaluation: Evaluation, test: pl.DataFrame, timezone: str) -> str:
    hourly, clock = _hour_rows(evaluation, timezone)
    y, p50, p90 = _arrays(test)
    days = diagnostics.breakdown(
        y, p50, p90, diagnostics.local_days(test.get_column("created_at"), timezone)
    )
    small = sum(row.n < diagnostics.MIN_ORDERS for row in hourly)
    note = (
        f" Hollow points: hours with fewer than {diagnostics.MIN_ORDERS} orders ({small}), too"
        " few to read; lines break across hours without orders."
    )
    return (
        '<section><h2>Over the day and the test period</h2><div class="grid2">'
        + _figure(
            plots.hourly_mae_svg("hourly", hourly, clock),
            f"MAE of P50 by hour of order creation ({clock}); whiskers are the model's 95 %"
            " interval; grey bars count the test orders." + (note if small else ""),
        )
        + _figure(
            plots.bands_svg(
                "daily", "By day", days, f"day of order creation (month-day, {timezone})"
            ),
            "Each day of the test period: MAE of P50 with its 95 % interval and bias (top), P90"
            " coverage with its Wilson interval against the 90 % target (bottom). Pale: fewer"
            f" than {diagnostics.MIN_ORDERS} orders." + _COVERAGE_KEY,
        )
        + "</div></section>"
    )


def _hour_rows(evaluation: Evaluation, timezone: str) -> tuple[Sequence[SegmentRow], str]:
    local = evaluation.segments.get(LOCAL_HOUR)
    if local is not None:
        return sorted(local, key=lambda row: row.value), f"local time, {timezone}"
    return evaluation.by_hour, "UTC"


def _errors_section(test: pl.DataFrame) -> str:
    y, p50, p90 = _arrays(test)
    labels, order = diagnostics.duration_bands(y)
    by_duration = diagnostics.breakdown(y, p50, p90, labels, order)
    figures = [
        _figure(
            plots.scatter_svg("scatter", y, p50),
            f"Predicted P50 against actual duration ({min(len(y), 1500):,} of {len(y):,} test"
            " orders, evenly spread over the predictions). On the dashed line the P50 is exact;"
            " a quantile model's points spread above it as often as below.",
        ),
        _figure(
            plots.residual_svg("residuals", y, p50),
            "Actual minus predicted P50 (outermost 1 % clipped into the end bins). The bias is"
            " the mean: above 0, orders arrive later than the P50 on average.",
        ),
    ]
    if "distance_km" in test.columns:
        labels, order = diagnostics.distance_bands(test.get_column("distance_km").to_numpy())
        by_distance = diagnostics.breakdown(y, p50, p90, labels, order)
        figures.append(
            _figure(
                plots.bands_svg(
                    "distance", "By distance", by_distance, "pickup-to-drop distance, km"
                ),
                "MAE, bias and P90 coverage by great-circle distance from pickup to drop."
                + _COVERAGE_KEY,
            )
        )
    figures.append(
        _figure(
            plots.bands_svg(
                "duration", "By actual duration", by_duration, "actual duration, minutes"
            ),
            "MAE, bias and P90 coverage by actual duration. Grouping by the outcome makes the"
            " shortest orders look early and the longest late (regression to the mean): read"
            " it for where errors are large, not as a bias to correct." + _COVERAGE_KEY,
        )
    )
    return (
        '<section><h2>Errors: predictions, residuals, distance, duration</h2><div class="grid2">'
        + "".join(figures)
        + "</div></section>"
    )


def _arrays(test: pl.DataFrame) -> tuple[FloatArray, FloatArray, FloatArray]:
    y, p50, p90 = (test.get_column(c).cast(pl.Float64).to_numpy() for c in BAND_COLUMNS[1:])
    return y, p50, p90


def _band_section(rows: pl.DataFrame, order: BandOrder) -> str:
    x_label = "test orders, sorted by P50" if order == "p50" else "test orders, by creation time"
    svg = plots.band_svg(
        "band",
        rows["y_true_s"].cast(pl.Float64).to_numpy(),
        rows["p50_s"].cast(pl.Float64).to_numpy(),
        rows["p90_s"].cast(pl.Float64).to_numpy(),
        x_label,
    )
    return (
        "<section><h2>The promise band against actuals</h2>"
        + _figure(
            svg,
            f"{len(rows):,} test orders: the shaded band runs from P50 to P90; dots are actual"
            " delivery times, red when later than P90.",
        )
        + "</section>"
    )


def _segments_section(evaluation: Evaluation) -> str:
    if not evaluation.segments:
        return ""
    named = list(evaluation.segments.items())
    cards = "".join(
        _segment_card(index, name, rows)
        for index, (name, rows) in enumerate(named)
        if name != LOCAL_HOUR  # drawn over the day above; its table stays here
    )
    tables = "".join(_segment_table(name, _table_order(name, rows)) for name, rows in named)
    return (
        f'<section><h2>By segment</h2><div class="grid2">{cards}</div>{tables}'
        f'<p class="caption">Pale bars and rows marked “too few”: fewer than'
        f" {diagnostics.MIN_ORDERS} test orders, mostly noise. Whiskers: the model's 95 %"
        " interval.</p></section>"
    )


def _table_order(name: str, rows: Sequence[SegmentRow]) -> Sequence[SegmentRow]:
    return sorted(rows, key=lambda row: row.value) if name == LOCAL_HOUR else rows


def _segment_card(index: int, name: str, rows: Sequence[SegmentRow]) -> str:
    svg = plots.segment_mae_svg(f"segment{index}", name, rows, SEGMENT_PLOT_VALUES)
    shown = min(len(rows), SEGMENT_PLOT_VALUES)
    caption = f"MAE of P50 per {name} value, model vs heuristic"
    if shown < len(rows):
        caption += f"; the {shown} values with the most orders, of {len(rows):,}"
    return f"<div><h3>By {escape(name)}</h3>" + _figure(svg, caption + ".") + "</div>"


def _segment_table(name: str, rows: Sequence[SegmentRow]) -> str:
    shown = rows[:SEGMENT_TABLE_ROWS]
    more = (
        f" (the {len(shown)} largest of {len(rows):,}; all are in the evaluation JSON)"
        if len(shown) < len(rows)
        else ""
    )
    body = "".join(_segment_row_html(row) for row in shown)
    return (
        f"<details><summary>Table by {escape(name)}{escape(more)}</summary><div class='scroll'>"
        f"<table class='small'><thead><tr><th>{escape(name)}</th><th class='num'>orders</th>"
        "<th class='num'>MAE model</th><th class='num'>MAE heuristic</th>"
        "<th class='num'>P90 cov. model</th><th class='num'>P90 cov. heuristic</th></tr></thead>"
        f"<tbody>{body}</tbody></table></div></details>"
    )


def _segment_row_html(row: SegmentRow) -> str:
    small = row.n < diagnostics.MIN_ORDERS
    label = escape(row.value) + (' <span class="tag">too few</span>' if small else "")
    return (
        f"<tr class='{'small-n' if small else ''}'><td>{label}</td><td class='num'>{row.n:,}</td>"
        f"<td class='num strong'>{_min(row.model.mae_s)}</td><td class='num'>"
        f"{_min(row.heuristic.mae_s)}</td><td class='num strong'>{_pct(row.model.coverage_p90)}"
        f"</td><td class='num'>{_pct(row.heuristic.coverage_p90)}</td></tr>"
    )


def _importance_section(importance: Mapping[str, float]) -> str:
    if not importance:
        return '<section><h2>Feature importance</h2><p class="caption">Not given.</p></section>'
    top = min(20, len(importance))
    return (
        '<section><h2>Feature importance</h2><div class="narrow">'
        + _figure(
            plots.importance_svg("importance", importance, top=20),
            f"The {top} features with the largest total gain, as a share of all features' gain.",
        )
        + "</div></section>"
    )


def _notes_section(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return f"<section><h2>Notes</h2><ul class='notes'>{items}</ul></section>"


def _run_section(
    details: Mapping[str, str], curves: Mapping[float, tuple[str, Sequence[float]]]
) -> str:
    if not details and not curves:
        return ""
    rows = "".join(
        f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>" for key, value in details.items()
    )
    drawn = {quantile: curve for quantile, curve in curves.items() if curve[1]}
    figure = (
        _figure(
            plots.loss_curves_svg("loss", drawn),
            "Validation loss after each boosting round, per quantile (the anchor quantile may"
            " use another loss than pinball); the dashed line marks the round kept by early"
            " stopping.",
        )
        if drawn
        else ""
    )
    return (
        '<section><h2>How this model was made</h2><div class="scroll">'
        f'<table class="small run">{rows}</table></div>{figure}</section>'
    )


def _json_section(evaluation: Evaluation) -> str:
    text = json.dumps(metrics_json(evaluation), indent=2)
    return (
        "<section><details><summary>metrics.json: durations in seconds (keys ending in"
        " <code>_s</code>), coverages and rates as fractions from 0 to 1; this page shows"
        f" minutes and percentages</summary><pre>{escape(text)}</pre></details></section>"
    )


def figure_html(svg: str, caption: str) -> str:
    """A plot with its caption (escaped), as the report shows it."""
    return _figure(svg, caption)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


# -- formatting ----------------------------------------------------------------------------


def _min(seconds: float, digits: int = 1) -> str:
    return f"{seconds / 60:,.{digits}f} min"


def _pct(share: float, digits: int = 1) -> str:
    return f"{share * 100:.{digits}f} %"


def _q(quantile: float) -> str:
    return f"{quantile * 100:g}"


def _relative_text(improvement: float | None) -> str:
    if improvement is None:
        return "n/a"
    if abs(improvement) < 0.0005:
        return "same"
    return f"{abs(improvement):.1%} {'lower' if improvement > 0 else 'higher'}"


def _relative_change(model: float, heuristic: float) -> str:
    if heuristic == 0:
        return "n/a"
    return (
        _relative_text((heuristic - model) / abs(heuristic))
        .replace("lower", "narrower")
        .replace("higher", "wider")
    )


def _tone_relative(improvement: float | None) -> str:
    if improvement is None or abs(improvement) < 0.0005:
        return ""
    return "good" if improvement > 0 else "bad"


def _min_range(low_s: float, high_s: float) -> str:
    return f"{low_s / 60:,.1f}–{high_s / 60:,.1f} min"


def _pct_range(low: float, high: float) -> str:
    return f"{low * 100:.1f}–{high * 100:.1f} %"


# -- page ----------------------------------------------------------------------------------


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>\n{body}\n<footer>Generated by Arrive. Self-contained: no scripts,"
        " no external resources.</footer></main></body></html>\n"
    )


def _write_atomic(path: Path, text: str) -> Path:
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a report file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    # open(..., "x") rather than mkstemp: the file gets the usual umask-based mode, not 0600.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with tmp.open("x", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


_CSS: Final = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;
--model:#2563eb;--heur:#f59e0b;--good:#047857;--bad:#b91c1c;--warn-bg:#fff7ed;--warn:#a16207}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
font-variant-numeric:tabular-nums}
main{max-width:1180px;margin:0 auto;padding:32px 28px 48px}
.eyebrow{margin:0;color:var(--muted);font-size:13px;letter-spacing:.06em;text-transform:uppercase}
h1{margin:4px 0 16px;font-size:28px;line-height:1.2;font-weight:700}
h2{margin:0 0 14px;font-size:18px;font-weight:650}
h3{margin:0 0 6px;font-size:15px;font-weight:650}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:20px 22px;margin:18px 0}
.banner{margin:0 0 16px;padding:10px 14px;border-radius:8px;font-size:14px}
.banner.warn{background:var(--warn-bg);color:var(--warn);border:1px solid #fed7aa}
dl.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px 24px;
margin:0}
dl.facts dt{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
dl.facts dd{margin:2px 0 0;font-weight:600;font-size:14px;overflow-wrap:anywhere}
section.kpis{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:14px;background:none;border:0;
padding:0}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.kpi .label{color:var(--muted);font-size:13px}
.kpi .value{font-size:28px;font-weight:700;margin:2px 0}
.kpi .sub{color:var(--muted);font-size:13px}
.kpi .sub.good{color:var(--good)}.kpi .sub.bad{color:var(--bad)}.kpi .sub.warn{color:var(--warn)}
table{border-collapse:collapse;width:100%}
th,td{padding:7px 10px;border-bottom:1px solid var(--line);text-align:left}
th{color:var(--muted);font-weight:600;font-size:13px}
td.num,th.num{text-align:right;white-space:nowrap}
td.strong{font-weight:650}
table.headline td{font-size:15px}
table.small td,table.small th{font-size:13px;padding:4px 8px}
.good{color:var(--good)}.bad{color:var(--bad)}.warn{color:var(--warn)}.muted{color:var(--muted)}
tr.small-n td{color:var(--muted)}
.tag{font-size:11px;border:1px solid var(--line);border-radius:4px;padding:0 4px;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
table.run th{width:30%;color:var(--muted);font-weight:600;vertical-align:top}
table.run td{overflow-wrap:anywhere}
.caption,figcaption{color:var(--muted);font-size:13px;margin:8px 0 0}
figure{margin:0}
figure svg{display:block;width:100%;height:auto}
.grid2{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:24px;align-items:start}
.grid2>*{min-width:0}
.narrow{max-width:720px}
details{margin-top:10px}
summary{cursor:pointer;color:var(--muted);font-size:13px}
pre{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:12px;
font-size:12px;overflow:auto;max-height:420px}
ul.notes{margin:0;padding-left:20px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}
@media (max-width:980px){.grid2{grid-template-columns:minmax(0,1fr)}
section.kpis{grid-template-columns:repeat(2,minmax(0,1fr))}}
@media (max-width:560px){section.kpis{grid-template-columns:minmax(0,1fr)}}
"""
