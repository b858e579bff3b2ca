"""The live report's rollout section (``arrive demo --rollout``) and the printed line
per rollout: the candidate's share over replay time, the guardrails' figures at each
evaluation, and each decision with its reason."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Final

import polars as pl
from matplotlib.figure import Figure

from arrive.charts import FULL_WIDTH_IN, LATE_COLOR, MODEL_COLOR, MUTED, legend_above, render
from arrive.demo.rollout import Evaluation, RolloutReplay, phase_orders, since
from arrive.rollout.state import Rollout
from arrive.training.report import figure_html

_COLORS: Final = (MODEL_COLOR, LATE_COLOR, "#16a34a", "#f59e0b")
_OUTCOME: Final = {"done": "promoted", "rolled_back": "rolled back", "aborted": "aborted"}


def summary_line(replay: RolloutReplay, rollout: Rollout, start: datetime) -> str:
    """One line: the rollout, its outcome, when (replay time) and why."""
    head = f"rollout {rollout.id} (version {rollout.candidate} against {rollout.control})"
    last = next((e for e in reversed(replay.audit) if e.rollout == rollout.id), None)
    if rollout.active or last is None:
        looks = [e for e in replay.evaluations if e.rollout == rollout.id]
        verdict = f"; last verdict {looks[-1].reason}" if looks else ""
        return f"{head}: still {rollout.label} when the replay ended{verdict}"
    outcome = _OUTCOME.get(rollout.phase, rollout.phase)
    return f"{head}: {outcome} at {since(start, last.at)} from {last.source}: {last.reason}"


def section(replay: RolloutReplay, start: datetime) -> str:
    """The report's HTML section."""
    timeline = figure_html(
        render(
            "rollout",
            "Rollouts over replay time",
            lambda fig: _draw(fig, replay, start),
            (FULL_WIDTH_IN, 4.2),
        ),
        "Top: each rollout's candidate share of units over replay time (its state as "
        "stored), with its decisions. Bottom: the P50 MAE of the candidate relative to "
        "the control at each evaluation, with its always-valid bounds (the guardrails "
        "breach when the lower bound is above 0).",
    )
    return (
        "<section><h2>Rollouts</h2>"
        "<p>Each candidate went through the demo's plan (shadow, then canary steps), "
        "judged every few minutes of replay time by the monitor's guardrails on the "
        "orders joined to their outcomes so far (an outcome counts from its time on).</p>"
        f"{timeline}{_phases(replay, start)}{_decisions(replay, start)}"
        f"{_evaluations(replay.evaluations, start)}</section>"
    )


def _hours(moment: datetime, start: datetime) -> float:
    return (moment - start).total_seconds() / 3600


def _draw(fig: Figure, replay: RolloutReplay, start: datetime) -> None:
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    traffic = replay.traffic
    ids = [r.id for r in replay.rollouts]
    for i, rid in enumerate(ids):
        color = _COLORS[i % len(_COLORS)]
        rows = traffic.filter(pl.col("rollout") == rid)
        if rows.height:
            hours = [_hours(t, start) for t in rows["at"]]
            top.step(
                hours,
                [100 * (s or 0.0) for s in rows["share"]],
                where="post",
                color=color,
                lw=1.4,
                label=f"rollout {rid}",
            )
        for entry in replay.audit:
            if entry.rollout == rid and entry.actor == "guardrails":
                style = ":" if entry.target == "rolled_back" else "--"
                top.axvline(_hours(entry.at, start), color=color, ls=style, lw=0.9)
        looks = [e for e in replay.evaluations if e.rollout == rid and "p50_mae_rel" in e.figures]
        if looks:
            x = [_hours(e.at, start) for e in looks]
            bottom.plot(x, [100 * e.figures["p50_mae_rel"] for e in looks], color=color, lw=1.2)
            bottom.fill_between(
                x,
                [100 * e.figures["p50_mae_rel_lower"] for e in looks],
                [100 * e.figures["p50_mae_rel_upper"] for e in looks],
                color=color,
                alpha=0.15,
                lw=0,
            )
    top.set(ylabel="candidate share, %", ylim=(-5, 105))
    bottom.axhline(0.0, color=MUTED, lw=0.8)
    bottom.set(xlabel="hours of replay time", ylabel="P50 MAE vs control, %")
    legend_above(top, ncols=max(1, len(ids)), fontsize=8)


def _phases(replay: RolloutReplay, start: datetime) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(r['rollout']))}</td><td>{100 * (r['share'] or 0):g} %</td>"
        f"<td>{r['orders']:,}</td><td>{r['candidate']:,}</td>"
        f"<td>{since(start, r['start'])}</td><td>{since(start, r['end'])}</td></tr>"
        for r in phase_orders(replay).iter_rows(named=True)
    )
    return (
        "<h3>Orders per state</h3><table><tr><th>rollout</th><th>candidate share</th>"
        "<th>orders</th><th>answered by the candidate</th><th>from</th><th>to</th></tr>"
        f"{rows}</table>"
    )


def _decisions(replay: RolloutReplay, start: datetime) -> str:
    rows = "".join(
        f"<tr><td>{escape(e.rollout)}</td><td>{since(start, e.at)}</td>"
        f"<td>{escape(e.source)} → {escape(e.target)}</td><td>{escape(e.actor)}</td>"
        f"<td>{escape(e.reason)}</td></tr>"
        for e in replay.audit
    )
    return (
        "<h3>Decisions (the audit log)</h3><table><tr><th>rollout</th><th>when</th>"
        f"<th>move</th><th>by</th><th>reason</th></tr>{rows}</table>"
    )


def _evaluations(looks: list[Evaluation], start: datetime) -> str:
    def cell(look: Evaluation, name: str, scale: float = 100.0) -> str:
        value = look.figures.get(name)
        return "" if value is None else f"{scale * value:+.1f}"

    rows = "".join(
        f"<tr><td>{escape(e.rollout)}</td><td>{since(start, e.at)}</td>"
        f"<td>{escape(e.label)}</td><td>{e.figures.get('orders_candidate', 0):,.0f}</td>"
        f"<td>{e.figures.get('orders_control', 0):,.0f}</td>"
        f"<td>{e.figures.get('orders_paired', 0):,.0f}</td>"
        f"<td>{cell(e, 'p50_mae_rel')}</td><td>{cell(e, 'late_rate_diff_upper')}</td>"
        f"<td>{escape(e.action)}</td><td>{escape(e.decision or '')}</td>"
        f"<td>{escape(e.reason)}</td></tr>"
        for e in looks
    )
    return (
        "<h3>Guardrail evaluations</h3><table><tr><th>rollout</th><th>when</th>"
        "<th>state</th><th>candidate orders</th><th>control orders</th><th>pairs</th>"
        "<th>P50 MAE vs control, %</th><th>late rate diff, upper bound, pp</th>"
        f"<th>verdict</th><th>decision</th><th>reason</th></tr>{rows}</table>"
    )
