"""The live report's section on injected faults (``arrive demo --inject``), and the
printed line per fault: the alert's timeline beside the metric that drove it."""

from __future__ import annotations

import math
from datetime import datetime
from html import escape
from typing import Final

from matplotlib.figure import Figure

from arrive.charts import FULL_WIDTH_IN, LATE_COLOR, MODEL_COLOR, MUTED, legend_above, render
from arrive.demo.inject import AlertReplay, Sample
from arrive.training.report import figure_html

_CSS: Final = {"pending": "warn", "firing": "bad", "resolved": "good"}
_MARKS: Final = {
    "pending": ("#f59e0b", ":"),
    "firing": (LATE_COLOR, "--"),
    "resolved": ("#16a34a", "-"),
}
_WHAT: Final = {
    "store-outage": "The feature store failed every read and ping; after each answer the "
    "service's <code>/metrics</code> was scraped for <code>arrive_store_up</code>.",
    "broken-feature": "The service read one maintained aggregate off by a fixed amount; the "
    "monitor's skew check (a sample of the prediction log recomputed offline, "
    "point-in-time, from the event log) ran every few minutes of replay time around the "
    "stretch, and its <code>arrive_feature_skew_mismatch_ratio</code> was collected "
    "after each check.",
    "stale-ingest": "Ingest applied no event (the service kept answering from what the store "
    "held), then caught up; after each answer the ingest watermark lag "
    "(<code>arrive_ingest_lag_seconds</code>: replay time minus the engine's watermark) "
    "was recorded.",
}


def alert_line(alerts: AlertReplay) -> str:
    """One printed line: when the injected fault's alert fired and cleared."""
    injection = alerts.injection
    seen = {t.state: t.time for t in reversed(alerts.transitions)}
    fired, cleared = seen.get("firing"), seen.get("resolved")
    return (
        f"injected {injection.fault.name} {injection.start:%H:%M}–{injection.end:%H:%M}: "
        f"{alerts.label} "
        + (f"fired at {fired:%H:%M}" if fired else "never fired")
        + (f", cleared at {cleared:%H:%M}" if cleared else ", never cleared")
        + " (replay time, UTC)"
    )


def alert_section(alerts: AlertReplay, key: str) -> str:
    """The injected fault, the alert's transitions (every series that went pending), and
    a plot of the metric with the stretch and the transitions marked."""
    injection, rule = alerts.injection, alerts.rule
    rows = (
        "".join(
            f'<tr class="{_CSS[t.state]}"><td>{t.time.isoformat()}</td>'
            f"<td>{escape(_label(alerts, name))}</td><td>{t.state}</td></tr>"
            for name, timeline in alerts.series.items()
            for t in timeline
        )
        or '<tr><td colspan="3" class="muted">the alert never went pending</td></tr>'
    )
    plot = _plot(alerts, key)
    return (
        f"<section><h2>Injected fault: {escape(injection.fault.name)}</h2>"
        f'<p class="caption">{_WHAT.get(injection.fault.name, "")} The fault was on from '
        f"{injection.start.isoformat()} to {injection.end.isoformat()} (replay time). The "
        f"alert <code>{escape(rule.alert)}</code> of deploy/prometheus/alerts.rules.yml "
        f"(<code>{escape(rule.expr)}</code> for {rule.wait.total_seconds():g} s) was "
        f"evaluated on those {len(injection.samples):,} samples as Prometheus evaluates it."
        f'</p><div class="grid2">{plot}'
        '<table class="small"><thead><tr><th>time (UTC)</th><th>alert</th><th>state</th></tr>'
        f"</thead><tbody>{rows}</tbody></table></div></section>"
    )


def _label(alerts: AlertReplay, name: str) -> str:
    by = alerts.rule.by
    return f'{alerts.rule.alert}{{{by[0]}="{name}"}}' if name and by else alerts.rule.alert


def _series(alerts: AlertReplay, name: str) -> str:
    by, metric = alerts.rule.by, alerts.rule.metric
    return f'{by[0]}="{name}"' if name and by else metric  # the axis names the metric


def _plot(alerts: AlertReplay, key: str) -> str:
    injection, rule = alerts.injection, alerts.rule
    fired = next(iter(alerts.fired or alerts.series), "")
    samples = _around(alerts)
    times = [_minutes(t, injection.start) for t, _ in samples]
    shown = [v.get(fired, math.nan) for _, v in samples]
    others = [max((x for k, x in v.items() if k != fired), default=math.nan) for _, v in samples]

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.axvspan(
            0.0, _minutes(injection.end, injection.start), color=MUTED, alpha=0.15, label="fault on"
        )
        ax.step(times, shown, where="post", color=MODEL_COLOR, lw=1.4, label=_series(alerts, fired))
        if any(not math.isnan(x) for x in others):
            ax.step(times, others, where="post", color=MUTED, lw=1, label="highest other series")
        ax.axhline(rule.limit, color=LATE_COLOR, lw=0.8, ls=":", label=f"{rule.op} {rule.limit:g}")
        for t in alerts.transitions:
            color, style = _MARKS[t.state]
            ax.axvline(
                _minutes(t.time, injection.start), color=color, ls=style, lw=1.2, label=t.state
            )
        ax.set(xlabel="minutes from the fault's start (replay time)", ylabel=rule.metric)
        legend_above(ax, ncols=2, fontsize=8)

    label = f"{rule.metric} around the injected {injection.fault.name}"
    return figure_html(
        render(key, label, draw, (FULL_WIDTH_IN * 0.6, 3.2)),
        f"{rule.metric} as the replay measured it; the shaded stretch is the fault, the "
        "vertical lines the alert's transitions.",
    )


def _minutes(moment: datetime, origin: datetime) -> float:
    return (moment - origin).total_seconds() / 60


def _around(alerts: AlertReplay) -> list[Sample]:
    """The samples from one stretch length before the fault to one after it (or after
    the alert's last transition, if later): a replay of days would hide the stretch."""
    injection = alerts.injection
    margin = injection.end - injection.start
    last = max([injection.end, *(t.time for t in alerts.transitions)])
    return [s for s in injection.samples if injection.start - margin <= s[0] <= last + margin]
