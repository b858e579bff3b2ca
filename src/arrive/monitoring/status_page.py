"""The monitor's status page, ``GET /status``: one self-contained HTML page (inline
CSS and SVG; no script, nothing fetched).

Every figure of the last window, every counter and every drift gauge on the page is
read from the samples of the registry ``/metrics`` exports, in one collection, so a
number on the page equals its series. What the registry does not hold comes from:

* the quality files of the recent windows (:mod:`~arrive.monitoring.status_state`): MAE and
  coverage over windows, and the calibration objective's error budget (the share of
  closed windows whose overall P90 coverage drifted, as ``arrive_slo:bad{slo=
  "calibration"}`` counts it in Prometheus);
* the join's event times (:meth:`arrive.monitoring.monitor.Monitor.watermarks`): the
  freshness of each input.

The service-side objectives (availability, latency, model answers, freshness) are
measured by Prometheus from ``arrive serve`` and ``arrive ingest``: the monitor does
not see them. Given a Prometheus server (:class:`~arrive.monitoring.prometheus_api.Queries`),
the page shows their recorded error ratios (``arrive_slo:error_ratio:rate1h`` and
``rate3d``, from the rules of :mod:`arrive.monitoring.rules`) and the alerts firing
there; without one, it names the recording rule to query instead of a number.
Alerts are also shown as the monitor sees them (calibration drift, feature drift,
skew); Prometheus fires them after their ``for`` duration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Final

import polars as pl
from prometheus_client import CollectorRegistry

from arrive.clock import Clock
from arrive.monitoring.prometheus_api import Queries
from arrive.monitoring.quality import Band
from arrive.monitoring.rules import cause_alerts, objectives
from arrive.monitoring.slo import SloConfig
from arrive.monitoring.status_plots import coverage_svg, windows_svg
from arrive.monitoring.status_state import (
    Alert,
    Budget,
    Labels,
    Remote,
    Scrape,
    alerts_seen,
    ask_prometheus,
    calibration_budget,
    scrape,
)

SEGMENT_LABELS: Final = ("version", "variant", "segment_kind", "segment")
COLUMNS: Final = (
    ("arrive_online_orders", "orders"),
    ("arrive_online_p50_mae_seconds", "P50 MAE"),
    ("arrive_online_heuristic_mae_seconds", "heuristic MAE"),
    ("arrive_online_p50_coverage", "P50 coverage"),
    ("arrive_online_p90_coverage", "P90 coverage"),
    ("arrive_online_p90_coverage_lower", "interval low"),
    ("arrive_online_p90_coverage_upper", "interval high"),
    ("arrive_online_late_rate", "late rate"),
    ("arrive_online_p90_width_seconds", "P90 − P50"),
)
"""The segment table's columns: a gauge of the last closed window each."""
PLOTTED_SEGMENTS: Final = 40
"""Most segments in the coverage plot (the largest); the table lists every one."""
DRIFT_FAMILIES: Final = ("arrive_feature_psi", "arrive_feature_skew_mismatch_ratio")
"""Families of :class:`arrive.monitoring.drift_metrics.DriftMetrics`: drift is measured
when the registry has them."""
_FIRING: Final = ' class="firing"'


class PlotCache:
    """The last SVG of each plot with a hash of its rows: a plot is drawn again only when
    its rows changed (a window closed), not at every request (drawing costs most)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, tuple[int, str]] = {}

    def get(
        self,
        key: str,
        rows: pl.DataFrame,
        band: Band,
        draw: Callable[[str, pl.DataFrame, Band], str],
    ) -> str:
        digest = hash((int(rows.hash_rows().sum()), rows.height, tuple(rows.columns), band))
        with self._lock:
            found = self._last.get(key)
            if found is None or found[0] != digest:
                found = self._last[key] = (digest, draw(key, rows, band))
        return found[1]


@dataclass(frozen=True)
class StatusPage:
    """Renders the page (see the module docstring) from what the monitor holds.

    Attributes:
        registry: the registry of ``/metrics``.
        history: the quality rows of segment ``all`` since a time (:class:`QualityHistory`).
        watermarks: the join's event times by input (None before the first).
        clock: now, for lags and the history's start.
        band: the calibrated P90 coverage band.
        slo: the objectives.
        history_s: how far back the plots over windows and the error budget look.
        prometheus: where to read the service-side objectives and alerts (None: not shown).
    """

    registry: CollectorRegistry
    history: Callable[[datetime], pl.DataFrame]
    watermarks: Callable[[], Mapping[str, datetime | None]]
    clock: Clock
    band: Band = field(default_factory=Band)
    slo: SloConfig = field(default_factory=SloConfig)
    history_s: float = 3 * 86400.0
    prometheus: Queries | None = None
    _plots: PlotCache = field(default_factory=PlotCache, init=False, compare=False, repr=False)

    def render(self) -> str:
        """The page's HTML."""
        now = self.clock.now()
        found = scrape(self.registry)
        history = self.history(now - timedelta(seconds=self.history_s))
        alerts = alerts_seen(found, self.slo)
        remote = ask_prometheus(self.prometheus)
        sections = [
            _header(found, now, alerts),
            _alerts_section(alerts, self.slo, remote),
            _slo_section(history, self.slo, self.history_s, remote),
            _models_section(found),
            _quality_section(found, history, self.band, self._plots),
            _drift_section(found),
            _freshness_section(found, self.watermarks(), now),
        ]
        return _page("Arrive monitor status", "\n".join(sections))


# -- alerts --------------------------------------------------------------------------------


def _alerts_section(alerts: list[Alert], slo: SloConfig, remote: Remote) -> str:
    waits = {rule["alert"]: rule["for"] for rule in cause_alerts(slo)}
    if alerts:
        rows = "".join(
            f'<tr class="firing alert"><td>{a.name}</td><td>{_labels(a.labels)}</td>'
            f'<td class="num">{_alert_value(a)}</td><td>{waits.get(a.name, "")}</td>'
            f'<td><a href="{escape(slo.runbook_base_url)}/{a.name}.md">runbook</a></td></tr>'
            for a in alerts
        )
        body = (
            '<table class="small"><thead><tr><th>alert</th><th>series</th>'
            '<th class="num">value</th><th>fires after</th><th></th></tr></thead>'
            f"<tbody>{rows}</tbody></table>"
        )
    else:
        body = '<p class="good">None: no segment off its band, no feature drifted or skewed.</p>'
    return (
        '<section id="alerts"><h2>Active alerts (as the monitor sees them)</h2>'
        f'{body}<p class="caption">Conditions true in the last closed window; Prometheus fires'
        " each after the duration shown. The service's and ingest's alerts (store down, model"
        " not loaded, budget burns, ingest lag) are evaluated by Prometheus from their own"
        f" metrics.</p>{_firing(remote, slo)}</section>"
    )


def _alert_value(alert: Alert) -> str:
    if alert.name == "FeatureDrift":
        return "–" if alert.value is None else f"PSI {alert.value:.3f}"
    return _pct(alert.value)


def _firing(remote: Remote, slo: SloConfig) -> str:
    if remote.note is not None:
        return f'<h3>Firing in Prometheus</h3><p class="muted">{escape(remote.note)}.</p>'
    if not remote.firing:
        return '<h3>Firing in Prometheus</h3><p class="good">None.</p>'
    rows = "".join(
        f'<tr class="firing remote"><td>{escape(labels.get("alertname", ""))}</td>'
        f"<td>{_labels(_shown(labels))}</td><td>{escape(labels.get('severity', ''))}</td>"
        f'<td><a href="{escape(slo.runbook_base_url)}/{escape(labels.get("alertname", ""))}.md">'
        "runbook</a></td></tr>"
        for labels, _ in remote.firing
    )
    return (
        '<h3>Firing in Prometheus</h3><table class="small"><thead><tr><th>alert</th>'
        f"<th>series</th><th>severity</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _shown(labels: Mapping[str, str]) -> Labels:
    hidden = ("__name__", "alertname", "alertstate", "severity")
    return tuple(sorted((k, v) for k, v in labels.items() if k not in hidden))


# -- objectives ----------------------------------------------------------------------------


def _slo_section(history: pl.DataFrame, slo: SloConfig, history_s: float, remote: Remote) -> str:
    rows = []
    for objective in objectives(slo):
        if objective.slo == "calibration":
            rows.append(_calibration_row(calibration_budget(history, objective.target), history_s))
        else:
            rows.append(_service_row(objective.slo, objective.alert, objective.target, remote))
    return (
        '<section id="slo"><h2>Objectives and error budget</h2><div class="scroll">'
        '<table class="small"><thead><tr><th>objective</th><th class="num">target</th>'
        '<th>state</th><th class="num">measured</th><th class="num">budget spent</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="caption">Budget spent: the error ratio over the window divided by the'
        " ratio the objective allows (above 100 %: overspent). Availability, latency, model"
        " answers and freshness are measured by Prometheus from the service and ingest (the"
        " recording rules of <code>arrive slo rules</code>); calibration by this monitor."
        "</p></section>"
    )


def _service_row(name: str, alert: str, target: float, remote: Remote) -> str:
    head = f'<tr id="slo-{name}"><td>{name}</td><td class="num">{_pct(target, 2)}</td>'
    hour, days = remote.ratios.get((name, "1h")), remote.ratios.get((name, "3d"))
    if remote.note is not None or days is None:
        query = f'arrive_slo:error_ratio:rate3d{{slo="{name}"}}'
        why = remote.note or "no data in Prometheus (are the recording rules loaded?)"
        return (
            f'{head}<td colspan="3" class="muted">{escape(why)}: see <code>{escape(query)}'
            f"</code> and <code>{alert}</code> in Prometheus</td></tr>"
        )
    spent = days / (1 - target)
    state, tone = ("met", "good") if spent < 1 else ("budget exhausted", "bad")
    return (
        f'{head}<td class="{tone}">{state}</td>'
        f'<td class="num">1 h {_pct(hour, 3)} · 3 d {_pct(days, 3)}</td>'
        f'<td class="num {tone}">{_pct(spent)} (3 d)</td></tr>'
    )


def _calibration_row(budget: Budget, history_s: float) -> str:
    head = (
        '<tr id="slo-calibration"><td>calibration</td>'
        f'<td class="num">{_pct(budget.objective, 2)}</td>'
    )
    if not budget.windows:
        return (
            f'{head}<td colspan="3" class="muted">no closed window in the last'
            f" {_duration(history_s)} yet</td></tr>"
        )
    spent = budget.spent
    state, tone = ("met", "good") if spent < 1 else ("budget exhausted", "bad")
    return (
        f'{head}<td class="{tone}">{state}</td>'
        f'<td class="num" data-windows="{budget.windows}">{budget.bad:,} of {budget.windows:,}'
        f' windows off band</td><td class="num {tone}">{_pct(spent)}</td></tr>'
        f'<tr><td colspan="5" class="caption">Calibration: share of the closed windows of the'
        f" last {_duration(history_s)} whose overall P90 coverage lies within its band; the"
        f" budget is the {_pct(1 - budget.objective, 1)} of windows allowed off it.</td></tr>"
    )


# -- models and quality --------------------------------------------------------------------


def _models_section(found: Scrape) -> str:
    joined = found.series("arrive_monitor_joined_total")
    rows = "".join(
        f"<tr><td>{escape(_label(labels, 'version'))}</td><td>{escape(_label(labels, 'variant'))}"
        f'</td><td class="num" data-metric="arrive_online_orders" data-labels="{_key(labels)}">'
        f"{orders:,.0f}</td>"
        f'<td class="num">{joined.get(_pick(labels, "variant", "version"), 0):,.0f}</td></tr>'
        for labels, orders in sorted(found.series("arrive_online_orders").items())
        if _label(labels, "segment_kind") == "all"
    )
    if not rows:
        return '<section id="models"><h2>Serving</h2><p>No closed window yet.</p></section>'
    return (
        '<section id="models"><h2>Serving: versions and variants in the last window</h2>'
        '<table class="small narrow"><thead><tr><th>version</th><th>variant</th>'
        '<th class="num">orders, last window</th><th class="num">joined since start</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _quality_section(found: Scrape, history: pl.DataFrame, band: Band, plots: PlotCache) -> str:
    latest = _latest_rows(found)
    if latest.is_empty():
        return '<section id="quality"><h2>Online quality</h2><p>No closed window yet.</p></section>'
    plotted = latest.sort("orders", descending=True).head(PLOTTED_SEGMENTS)
    plotted = plotted.sort("version", "variant", "segment_kind", "segment")
    caption = (
        f"The {plotted.height} largest of {latest.height} segments"
        if latest.height > plotted.height
        else "Every segment"
    ) + (
        f" of the last closed window; the grey band is {_pct(band.target, 0)} ±"
        f" {band.tolerance * 100:g} pp. A segment drifts (red) only when its whole 95 %"
        " interval lies outside the band."
    )
    figures = [_figure(plots.get("coverage", plotted, band, coverage_svg), caption)]
    if not history.is_empty():
        figures.append(
            _figure(
                plots.get("windows", history, band, windows_svg),
                "Segment all of each version and variant over the recent windows: P50 MAE"
                " (the heuristic's on the same orders dashed) and P90 coverage with its"
                " 95 % interval.",
            )
        )
    return (
        '<section id="quality"><h2>Online accuracy and calibration by segment</h2>'
        f"{''.join(figures)}{_segment_table(found, latest)}</section>"
    )


def _latest_rows(found: Scrape) -> pl.DataFrame:
    """One row per series of the last window, with the drift flag and a plot label."""
    rows = []
    for labels in found.series("arrive_online_orders"):
        coverage = found.value("arrive_online_p90_coverage", labels)
        if coverage is None:
            continue
        rows.append(
            {
                **dict(labels),
                "orders": found.value("arrive_online_orders", labels),
                "p90_coverage": coverage,
                "p90_coverage_lower": found.value("arrive_online_p90_coverage_lower", labels),
                "p90_coverage_upper": found.value("arrive_online_p90_coverage_upper", labels),
                "calibration_drift": found.value("arrive_calibration_drift", labels) == 1,
                "label": _plot_label(labels),
            }
        )
    return pl.DataFrame(rows)


def _segment_table(found: Scrape, latest: pl.DataFrame) -> str:
    head = "".join(f'<th class="num">{escape(title)}</th>' for _, title in COLUMNS)
    rows = []
    for labels in sorted(found.series("arrive_online_orders")):
        cells = "".join(_cell(found, name, labels) for name, _ in COLUMNS)
        drift = found.value("arrive_calibration_drift", labels) == 1
        rows.append(
            f'<tr data-labels="{_key(labels)}"{_FIRING if drift else ""}>'
            + "".join(f"<td>{escape(_label(labels, name))}</td>" for name in SEGMENT_LABELS)
            + cells
            + f"<td>{'drift' if drift else ''}</td></tr>"
        )
    titles = "".join(f"<th>{name.replace('_', ' ')}</th>" for name in SEGMENT_LABELS)
    return (
        "<details><summary>Every segment of the last window, as exported on /metrics"
        f' ({latest.height} rows)</summary><div class="scroll"><table class="small segments">'
        f"<thead><tr>{titles}{head}<th>calibration</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></details>"
    )


def _cell(found: Scrape, name: str, labels: Labels) -> str:
    value = found.value(name, labels)
    text = "–" if value is None else _format(name, value)
    return f'<td class="num" data-metric="{name}">{text}</td>'


# -- drift and freshness -------------------------------------------------------------------


def _drift_section(found: Scrape) -> str:
    if not any(family in found.families for family in DRIFT_FAMILIES):
        return (
            '<section id="drift"><h2>Feature drift and skew</h2><p class="muted">Not measured'
            " by this monitor (no drift gauges).</p></section>"
        )
    drifted = found.series("arrive_feature_drift")
    psi = sorted(found.series("arrive_feature_psi").items(), key=lambda item: -item[1])
    rows = "".join(
        f"<tr{_FIRING if drifted.get(labels) == 1 else ''}>"
        f"<td>{escape(_label(labels, 'version'))}</td><td>{escape(_label(labels, 'feature'))}</td>"
        f'<td class="num" data-metric="arrive_feature_psi" data-labels="{_key(labels)}">'
        f"{value:.3f}</td><td>{'drift' if drifted.get(labels) == 1 else ''}</td></tr>"
        for labels, value in psi
    )
    skew = "".join(
        f"<tr><td>{escape(_label(labels, 'feature'))}</td>"
        f'<td class="num" data-metric="arrive_feature_skew_mismatch_ratio"'
        f' data-labels="{_key(labels)}">{_pct(value, 2)}</td></tr>'
        for labels, value in sorted(found.series("arrive_feature_skew_mismatch_ratio").items())
    )
    return (
        '<section id="drift"><h2>Feature drift and skew</h2><div class="grid2">'
        '<div class="scroll"><table class="small"><thead><tr><th>version</th><th>feature</th>'
        f'<th class="num">PSI</th><th></th></tr></thead><tbody>{rows or _none(4)}</tbody>'
        '</table></div><div class="scroll"><table class="small"><thead><tr><th>feature</th>'
        '<th class="num">served ≠ offline</th></tr></thead>'
        f"<tbody>{skew or _none(2)}</tbody></table></div></div></section>"
    )


def _freshness_section(
    found: Scrape, watermarks: Mapping[str, datetime | None], now: datetime
) -> str:
    rows = [
        f"<tr><td>{escape(name)} event time</td><td>{_time(moment)}</td>"
        f'<td class="num">{_lag(moment, now)}</td></tr>'
        for name, moment in watermarks.items()
    ]
    end = found.value("arrive_monitor_last_window_end_timestamp_seconds")
    moment = None if end is None else datetime.fromtimestamp(end, UTC)
    rows.append(
        "<tr><td>last closed window ends</td>"
        f'<td data-metric="arrive_monitor_last_window_end_timestamp_seconds">{_time(moment)}</td>'
        f'<td class="num">{_lag(moment, now)}</td></tr>'
    )
    counters = "".join(
        f"<tr><td>{escape(name.removeprefix('arrive_monitor_').removesuffix('_total'))}"
        f"{' ' + _labels(labels) if labels else ''}</td><td class='num' data-metric='{name}'"
        f' data-labels="{_key(labels)}">{value:,.0f}</td></tr>'
        for name, series in sorted(found.samples.items())
        if name.startswith("arrive_monitor_")
        and name.endswith("_total")
        and name != "arrive_monitor_joined_total"
        for labels, value in sorted(series.items())
    )
    return (
        '<section id="freshness"><h2>Freshness and inputs</h2><div class="grid2">'
        '<table class="small"><thead><tr><th>input</th><th>time (UTC)</th>'
        f'<th class="num">behind now</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        '<table class="small"><thead><tr><th>counted since the first start</th>'
        f'<th class="num">total</th></tr></thead><tbody>{counters}</tbody></table></div>'
        '<p class="caption">An input whose event time stops moving holds every window open:'
        " the windows close when both inputs (and the horizon) have passed them.</p></section>"
    )


# -- formatting ----------------------------------------------------------------------------


def _format(name: str, value: float) -> str:
    if name.endswith("_seconds"):
        return f"{value / 60:,.2f} min"
    if name == "arrive_online_orders":
        return f"{value:,.0f}"
    return _pct(value)


def _pct(share: float | None, digits: int = 1) -> str:
    return "–" if share is None else f"{share * 100:.{digits}f} %"


def _time(moment: datetime | None) -> str:
    return "–" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _lag(moment: datetime | None, now: datetime) -> str:
    return "–" if moment is None else _duration((now - moment).total_seconds())


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.0f} s"


def _label(labels: Labels, name: str) -> str:
    return dict(labels).get(name, "")


def _pick(labels: Labels, *names: str) -> Labels:
    return tuple((key, value) for key, value in labels if key in names)


def _key(labels: Labels) -> str:
    return escape(",".join(f"{key}={value}" for key, value in labels), quote=True)


def _labels(labels: Labels) -> str:
    return escape(", ".join(f"{key}={value}" for key, value in labels))


def _plot_label(labels: Labels) -> str:
    values = dict(labels)
    segment = (
        "all"
        if values["segment_kind"] == "all"
        else f"{values['segment_kind']}={values['segment']}"
    )
    return f"{values['version']}·{values['variant']}  {segment}"


def _none(columns: int) -> str:
    return f'<tr><td colspan="{columns}" class="muted">no measurement yet</td></tr>'


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _header(found: Scrape, now: datetime, alerts: list[Alert]) -> str:
    orders = sum(
        value
        for labels, value in found.series("arrive_online_orders").items()
        if _label(labels, "segment_kind") == "all"
    )
    state = (
        f'<span class="bad">{len(alerts)} alert{"s" if len(alerts) != 1 else ""}</span>'
        if alerts
        else '<span class="good">no alert</span>'
    )
    return (
        '<header><p class="eyebrow">Arrive · arrive monitor</p><h1>Status</h1>'
        f"<p>{state} · {orders:,.0f} orders joined in the last closed window ·"
        f" rendered {_time(now)} UTC</p></header>"
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request (a 404 in the console)
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>\n{body}\n<footer>Served by arrive monitor from the state its /metrics"
        " exports. Self-contained: no scripts, no external resources.</footer></main></body>"
        "</html>\n"
    )


_CSS: Final = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;
--good:#047857;--bad:#b91c1c}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;
font-variant-numeric:tabular-nums}
main{max-width:1180px;margin:0 auto;padding:24px 24px 40px}
.eyebrow{margin:0;color:var(--muted);font-size:13px;letter-spacing:.06em;text-transform:uppercase}
h1{margin:4px 0 8px;font-size:28px}
h2{margin:0 0 12px;font-size:18px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:18px 20px;margin:16px 0}
table{border-collapse:collapse;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;font-size:13px}
th{color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;white-space:nowrap}
tr.firing td{background:#fef2f2}
.good{color:var(--good)}.bad{color:var(--bad)}.muted{color:var(--muted)}
.scroll{overflow-x:auto;max-width:100%}
.narrow{max-width:720px}
.caption,figcaption{color:var(--muted);font-size:13px;margin:8px 0 0}
figure{margin:0 0 16px}
figure svg{display:block;width:100%;height:auto}
.grid2{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:24px;align-items:start}
.grid2>*{min-width:0}
summary{cursor:pointer;color:var(--muted);font-size:13px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:20px}
@media (max-width:900px){.grid2{grid-template-columns:minmax(0,1fr)}}
"""
