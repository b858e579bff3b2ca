"""The live replay's HTML report and its printed summary.

The page is the evaluation report of :mod:`arrive.training.report` computed from
the service's answers, with more sections: online against offline on the same
orders, request latency, fallbacks by reason, and what ``arrive monitor`` would
show of the replay: P90 calibration by segment (the monitor's quality rows) and
feature drift (the monitor's PSI against the model's reference profile).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Final

import polars as pl

from arrive.demo.alert_report import alert_section
from arrive.demo.inject import AlertReplay
from arrive.monitoring.drift import THRESHOLD
from arrive.monitoring.outcome import AGREEMENT_TOLERANCE, LiveOutcome
from arrive.monitoring.quality import Band
from arrive.training import plots
from arrive.training.report import figure_html, write_report

FEW_ORDERS: Final = 30
"""Segments with fewer orders are greyed in the calibration tables: too few to read."""
SEGMENT_LABELS: Final = {
    "market": "market",
    "local_hour": "local hour",
    "store_category": "store category",
    "store_history": "store history",
    "fallback": "fallback reason",
}


def write_live_report(
    path: Path,
    outcome: LiveOutcome,
    *,
    facts: Mapping[str, str],
    feature_importance: Mapping[str, float],
    timezone: str = "UTC",
    notes: Sequence[str] = (),
    drift: pl.DataFrame | None = None,
    band: Band | None = None,
    alerts: Sequence[AlertReplay] = (),
    extra_sections: Sequence[str] = (),
) -> Path:
    """Write the self-contained report of a live replay to ``path``.

    ``notes`` are added to the report's own (e.g. :func:`replay_note`); hours and days
    are shown in ``timezone``, the marketplace's. ``drift``: the monitor's PSI rows
    (:func:`arrive.demo.drift.replay_drift`), None when not measured; ``band``: the
    calibration band the monitor's quality rows were flagged against; ``alerts``: the
    alerts of the injected faults (``arrive demo --inject``), each a timeline beside the
    metric that drove it; ``extra_sections``: more HTML sections, last (e.g. the
    travel-time providers').
    """
    delivered = outcome.answers.filter(pl.col("duration_s").is_not_null())
    sample = delivered.select(
        "created_at", pl.col("duration_s").alias("y_true_s"), "p50_s", "p90_s"
    )
    return write_report(
        path,
        title="Live replay: the ETA service on the latest days",
        evaluation=outcome.evaluation,
        feature_importance=feature_importance,
        sample=sample,
        context=facts,
        timezone=timezone,
        notes=[
            "Every order of the replayed days was sent to the service at its creation time, "
            "after every earlier event had gone through ingest into the online store; each "
            "answer was then joined to the order's delivery.",
            *notes,
        ],
        extra_sections=[
            _agreement_section(outcome),
            _latency_section(outcome),
            _fallback_section(outcome),
            calibration_section(outcome.quality, band or Band()),
            drift_section(drift),
            *(alert_section(a, f"alert{i}") for i, a in enumerate(alerts)),
            *extra_sections,
        ],
    )


def replay_note(sent: int, delivered: int, test_orders: int, first: datetime) -> str:
    """Why the replay's order count differs from the training run's test orders.

    The replay sends every order created at or after ``first``, the creation time of
    the run's first test order. The time split cuts its sorted orders by row count,
    so delivered orders created at exactly ``first`` may sit in the calibration slice
    rather than the test one; orders never delivered have no actual to score.

    Args:
        sent: orders the replay sent.
        delivered: those delivered (scored in the live report).
        test_orders: the training run's test orders.
        first: the first test order's creation time.
    """
    parts = [
        f"The replay sent {sent:,} orders, every one created at or after the first test"
        f" order ({first.isoformat()}); {delivered:,} were delivered and are scored here;"
        f" the training run tested on {test_orders:,}."
    ]
    if sent > delivered:
        parts.append(f"{sent - delivered:,} were never delivered: no actual time to score.")
    if delivered > test_orders:
        parts.append(
            f"{delivered - test_orders:,} were created at that same time as the first test order"
            " but the split, which cuts the time-sorted orders by count, put them in the"
            " calibration slice: the model was calibrated on them."
        )
    elif delivered < test_orders:
        parts.append("Fewer than the test orders: the replay was limited (--live-orders).")
    return " ".join(parts)


def summary_lines(outcome: LiveOutcome) -> list[str]:
    """The few lines the demo prints at the end."""
    ev, agree = outcome.evaluation, outcome.agreement
    latency = outcome.latency_ms
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(outcome.fallbacks.items()) if k != "model")
    return [
        f"live: {len(outcome.answers):,} orders answered, {ev.model.n:,} delivered and joined",
        f"P50 MAE {ev.model.mae_s / 60:.2f} min (heuristic {ev.heuristic.mae_s / 60:.2f} min); "
        f"P90 coverage {ev.model.at(0.9).coverage:.1%}; late rate {ev.model.late_rate:.1%}",
        f"latency p50 {latency.get('p50', float('nan')):.2f} ms, "
        f"p99 {latency.get('p99', float('nan')):.2f} ms; fallback rate "
        f"{outcome.fallback_rate:.1%}" + (f" ({reasons})" if reasons else ""),
        f"online vs offline on the same orders: MAE {agree.online_mae_s / 60:.3f} vs "
        f"{agree.offline_mae_s / 60:.3f} min (gap {agree.mae_gap:.2%}), coverage "
        f"{agree.online_coverage:.2%} vs {agree.offline_coverage:.2%} — "
        + ("agree" if agree.holds else f"DISAGREE beyond {AGREEMENT_TOLERANCE:.1%}"),
    ]


def _agreement_section(outcome: LiveOutcome) -> str:
    agree = outcome.agreement
    verdict = (
        '<p class="good">Online and offline agree within '
        f"{AGREEMENT_TOLERANCE:.1%}: features, service and outcome join match end to end.</p>"
        if agree.holds
        else f'<p class="bad">Online and offline differ by more than {AGREEMENT_TOLERANCE:.1%}'
        ": a bug in features, service or join.</p>"
    )
    rows = "".join(
        f'<tr><td>{escape(label)}</td><td class="num">{online}</td><td class="num">{offline}'
        "</td></tr>"
        for label, online, offline in (
            ("P50 MAE", _min(agree.online_mae_s), _min(agree.offline_mae_s)),
            ("P90 coverage", f"{agree.online_coverage:.2%}", f"{agree.offline_coverage:.2%}"),
        )
    )
    return (
        "<section><h2>Online equals offline</h2>"
        '<table class="headline"><thead><tr><th>metric</th><th class="num">service (online)'
        '</th><th class="num">offline builder</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>{verdict}"
        f'<p class="caption">{agree.orders:,} delivered orders; the largest per-order P50 '
        f"difference is {agree.max_p50_gap_s:.3g} s.</p></section>"
    )


def _latency_section(outcome: LiveOutcome) -> str:
    latency = outcome.answers.get_column("latency_ms").to_numpy()
    cells = "".join(
        f'<tr><td>{escape(k)}</td><td class="num">{v:.2f} ms</td></tr>'
        for k, v in outcome.latency_ms.items()
    )
    plot = figure_html(
        plots.latency_svg("latency", latency),
        "Round trip of each ETA request as the replay sent it (client to service and back).",
    )
    return (
        '<section><h2>Latency</h2><div class="grid2">'
        f'{plot}<table class="small"><tbody>{cells}</tbody></table></div></section>'
    )


def _fallback_section(outcome: LiveOutcome) -> str:
    total = max(len(outcome.answers), 1)
    cells = "".join(
        f'<tr><td>{escape(reason)}</td><td class="num">{count:,}</td>'
        f'<td class="num">{count / total:.2%}</td></tr>'
        for reason, count in sorted(outcome.fallbacks.items(), key=lambda kv: -kv[1])
    )
    return (
        "<section><h2>Who answered</h2>"
        '<table class="small narrow"><thead><tr><th>answered by</th><th class="num">orders</th>'
        f'<th class="num">share</th></tr></thead><tbody>{cells}</tbody></table>'
        '<p class="caption"><code>model</code>: the model answered; any other row is a fallback'
        " to the heuristic with its reason code.</p></section>"
    )


def _min(seconds: float) -> str:
    return f"{seconds / 60:,.3f} min"


def calibration_section(quality: pl.DataFrame, band: Band) -> str:
    """P90 coverage by segment from the monitor's quality rows, with the 95 % interval,
    against ``band``; drifted segments flagged, segments under :data:`FEW_ORDERS` greyed."""
    low, high = band.target - band.tolerance, band.target + band.tolerance
    tables = []
    for kind, label in SEGMENT_LABELS.items():
        rows = quality.filter(pl.col("segment_kind") == kind)
        if rows.is_empty() or rows.get_column("segment").unique().to_list() == ["unknown"]:
            continue
        body = "".join(_calibration_row(row) for row in rows.iter_rows(named=True))
        tables.append(
            f"<h3>By {escape(label)}</h3>"
            '<table class="small"><thead><tr><th>version / variant</th><th>segment</th>'
            '<th class="num">orders</th><th class="num">P50 MAE</th>'
            '<th class="num">heuristic MAE</th><th class="num">P90 coverage</th>'
            '<th class="num">95 % interval</th><th>calibration</th></tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
    flagged = quality.filter(pl.col("calibration_drift") & (pl.col("segment_kind") != "all"))
    named = ", ".join(
        f"{SEGMENT_LABELS[kind]} {segment} ({version})"
        for version, kind, segment in flagged.select("version", "segment_kind", "segment").rows()
    )
    verdict = (
        f'<p class="bad">Outside the band: {escape(named)}.</p>'
        if named
        else '<p class="good">No segment is surely outside the band.</p>'
    )
    return (
        "<section><h2>Calibration by segment</h2>"
        f"<p class=\"caption\">The monitor's quality rows (<code>arrive monitor</code>'s own "
        "aggregation) over the whole replay as one window. A segment drifts when the 95 % "
        f"Wilson interval of its P90 coverage lies wholly outside {low:.0%}–{high:.0%} "
        f"({band.target:.0%} ± {band.tolerance * 100:g} pp); segments under {FEW_ORDERS} "
        "orders are greyed. The heuristic's P50 MAE is on the same orders (the heuristic "
        f"stored with the model).</p>{verdict}{''.join(tables)}</section>"
    )


def _calibration_row(row: dict[str, object]) -> str:
    orders = int(str(row["orders"]))
    if orders < FEW_ORDERS:  # the monitor's flag stands; the row is greyed
        css = "muted"
        state = "outside the band, few orders" if row["calibration_drift"] else "few orders"
    elif row["calibration_drift"]:
        css, state = "bad", "outside the band"
    else:
        css, state = "", "ok"
    interval = f"{row['p90_coverage_lower']:.1%} – {row['p90_coverage_upper']:.1%}"
    model = escape(f"{row['version']} / {row['variant']}")
    return (
        f'<tr class="{css}"><td>{model}</td>'
        f'<td>{escape(str(row["segment"]))}</td><td class="num">{orders:,}</td>'
        f'<td class="num">{_mae(row["p50_mae_s"])}</td>'
        f'<td class="num">{_mae(row["heuristic_mae_s"])}</td>'
        f'<td class="num">{row["p90_coverage"]:.1%}</td><td class="num">{interval}</td>'
        f'<td class="{css}">{state}</td></tr>'
    )


def _mae(seconds: object) -> str:
    return "–" if not isinstance(seconds, float) else f"{seconds / 60:.2f} min"


def drift_section(drift: pl.DataFrame | None) -> str:
    """PSI per feature against the model's reference profile, drifted features named."""
    if drift is None or drift.is_empty():
        return (
            '<section><h2>Feature drift</h2><p class="muted">Not measured: no prediction '
            "log of the replay was read.</p></section>"
        )
    body = "".join(_drift_row(row) for row in drift.iter_rows(named=True))
    drifted = drift.filter(pl.col("drifted")).get_column("feature").to_list()
    verdict = (
        f'<p class="bad">Drifted: {escape(", ".join(drifted))}.</p>'
        if drifted
        else f'<p class="good">No feature drifted (PSI above {THRESHOLD:g}).</p>'
    )
    return (
        "<section><h2>Feature drift</h2>"
        '<p class="caption">The monitor\'s PSI of each feature the service served (from its '
        "prediction log) against the reference profile the model carries from training; "
        f"above {THRESHOLD:g} with enough orders is drift.</p>{verdict}"
        '<table class="small"><thead><tr><th>version</th><th>feature</th><th>kind</th>'
        '<th class="num">orders</th><th class="num">PSI</th><th>drift</th></tr></thead>'
        f"<tbody>{body}</tbody></table></section>"
    )


def _drift_row(row: dict[str, object]) -> str:
    value = row["psi"]
    shown = "–" if value is None else f"{value:.3f}"
    state = str(row["note"] or ("drifted" if row["drifted"] else "ok"))
    css = "bad" if row["drifted"] else ("muted" if row["note"] else "")
    return (
        f'<tr class="{css}"><td>{escape(str(row["version"]))}</td>'
        f"<td>{escape(str(row['feature'] or '–'))}</td><td>{escape(str(row['kind'] or '–'))}</td>"
        f'<td class="num">{int(str(row["orders"] or 0)):,}</td><td class="num">{shown}</td>'
        f'<td class="{css}">{escape(state)}</td></tr>'
    )
