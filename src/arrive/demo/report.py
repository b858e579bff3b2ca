"""The live replay's HTML report and its printed summary.

The page is the evaluation report of :mod:`arrive.training.report` computed from
the service's answers, with three more sections: online against offline on the
same orders, request latency, and fallbacks by reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from pathlib import Path

import polars as pl

from arrive.monitoring.outcome import AGREEMENT_TOLERANCE, LiveOutcome
from arrive.training import plots
from arrive.training.report import figure_html, write_report


def write_live_report(
    path: Path,
    outcome: LiveOutcome,
    *,
    facts: Mapping[str, str],
    feature_importance: Mapping[str, float],
    timezone: str = "UTC",
    notes: Sequence[str] = (),
) -> Path:
    """Write the self-contained report of a live replay to ``path``.

    ``notes`` are added to the report's own (e.g. :func:`replay_note`); hours and days
    are shown in ``timezone``, the marketplace's.
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
        + ("agree" if agree.holds else f"DISAGREE beyond {AGREEMENT_TOLERANCE:.0%}"),
    ]


def _agreement_section(outcome: LiveOutcome) -> str:
    agree = outcome.agreement
    verdict = (
        '<p class="good">Online and offline agree within '
        f"{AGREEMENT_TOLERANCE:.0%}: features, service and outcome join match end to end.</p>"
        if agree.holds
        else f'<p class="bad">Online and offline differ by more than {AGREEMENT_TOLERANCE:.0%}'
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
