"""Arrive's Grafana dashboard, generated from the objectives (:mod:`.slo`) and the
recording rules (:mod:`.rules`): ``arrive slo dashboard`` writes it to
``deploy/grafana/arrive.json`` (:data:`FILE`), ready for Grafana's file provisioning.

Rows (:func:`rows`): the objectives (error budget left over :data:`BUDGET_PERIOD`, SLI,
burn rates over the page alerts' long windows), latency, availability, fallbacks, online
accuracy and P90 coverage by segment and variant (with the monitor's coverage band),
calibration drift, feature drift and skew, freshness, ingest, the prediction log and the
model serving. The objectives' panels read the recording rules' names from
:func:`arrive.monitoring.rules.recording_rules`; every other expression reads metrics of
``arrive serve``, ``arrive ingest`` and ``arrive monitor``. Grafana's JSON shapes
(panels, grid, variables) are :mod:`arrive.monitoring.grafana`'s.

Template variables: ``datasource`` (any Prometheus data source), and ``version``,
``variant``, ``segment_kind`` (the monitor's labels, multi-valued, "All" = ``.*``; the
segment kind starts at ``all``, the overall rows). Raw counters are rated over
``$__rate_interval``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from arrive.monitoring.drift import THRESHOLD as PSI_THRESHOLD
from arrive.monitoring.grafana import (
    SCHEMA_VERSION,
    Panel,
    Query,
    datasource_variable,
    label_variable,
    panels,
)
from arrive.monitoring.quality import Band
from arrive.monitoring.rules import BURNS, WINDOWS, objectives, recording_rules
from arrive.monitoring.slo import SloConfig

FILE: Final = "arrive.json"
UID: Final = "arrive"
TITLE: Final = "Arrive"
BUDGET_PERIOD: Final = "30d"
"""The error budget's period, as in the burn-rate alerts (14.4x spends 2 % of it per hour)."""
RATE: Final = "$__rate_interval"
VARIABLES: Final = ("version", "variant", "segment_kind")
"""Filters on the monitor's labels, their values read from :data:`_VALUES_OF`."""
_VALUES_OF: Final = "arrive_online_orders"
_MONITOR: Final = 'version=~"$version",variant=~"$variant",segment_kind=~"$segment_kind"'
_SEGMENT: Final = "{{version}} {{variant}} {{segment_kind}}={{segment}}"


def dashboard(config: SloConfig) -> dict[str, Any]:
    """The dashboard of ``config``'s objectives as Grafana's JSON model."""
    return {
        "uid": UID,
        "title": TITLE,
        "description": "Arrive: objectives, latency, fallbacks, online accuracy, drift, freshness",
        "tags": ["arrive", "slo"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "templating": {"list": _variables()},
        "annotations": {"list": []},
        "panels": list(panels(rows(config))),
    }


def _variables() -> list[dict[str, Any]]:
    start = {"segment_kind": "all"}  # the overall rows, not every segment at once
    labels = [label_variable(name, _VALUES_OF, start.get(name)) for name in VARIABLES]
    return [datasource_variable(), *labels]


def rows(config: SloConfig) -> list[tuple[str, list[Panel]]]:
    """The dashboard's rows: a title and its panels, top to bottom."""
    return [
        ("Service-level objectives", _objectives(config)),
        ("Latency", _latency(config)),
        ("Availability", _availability(config)),
        ("Fallbacks", _fallbacks(config)),
        ("Online accuracy and coverage (arrive monitor)", _accuracy()),
        ("Calibration drift", _calibration()),
        ("Feature drift and skew", _drift(config)),
        ("Freshness", _freshness(config)),
        ("Ingest", _ingest(config)),
        ("Prediction log", _prediction_log()),
        ("Model", _model()),
        ("Rollout (arrive monitor's guardrails)", _rollout()),
    ]


def error_ratio_records(config: SloConfig) -> dict[str, str]:
    """Window → name of the recording rule of each objective's error ratio over it, as
    :func:`~arrive.monitoring.rules.recording_rules` writes them (labelled ``slo``)."""
    found: dict[str, str] = {}
    for group in recording_rules(config)["groups"]:
        for rule in group["rules"]:
            windows = set(re.findall(r"\[(\w+)\]", rule["expr"]))
            if len(windows) == 1:
                found[windows.pop()] = rule["record"]
    return found


def _objectives(config: SloConfig) -> list[Panel]:
    records = error_ratio_records(config)
    step = WINDOWS[0]
    budget = [
        Query(
            # ">= 0" drops the NaN of a window without requests (0/0): it would make the
            # whole average NaN; a subquery, because a range cannot follow a filter.
            f'1 - avg_over_time(({records[step]}{{slo="{o.slo}"}} >= 0)[{BUDGET_PERIOD}:{step}])'
            f" / (1 - {o.target!r})",
            o.slo,
        )
        for o in objectives(config)
    ]
    panels = [
        Panel(
            f"Error budget remaining ({BUDGET_PERIOD})",
            tuple(budget),
            "percentunit",
            "stat",
            f"1 - the error ratio averaged over {BUDGET_PERIOD} (time-weighted: the {step} "
            f"recording rule every {step}, windows without requests left out) / the budget "
            "(1 - objective). Below 0: spent.",
            ((0.0, "orange"), (0.25, "green")),
            base="red",
            width=12,
        ),
        _sli(config, records[BURNS[0].long], BURNS[0].long),
    ]
    return panels + [_burn_rate(config, records[burn.long], burn.long) for burn in BURNS]


def _sli(config: SloConfig, record: str, window: str) -> Panel:
    queries = tuple(Query(f'1 - {record}{{slo="{o.slo}"}}', o.slo) for o in objectives(config))
    return Panel(
        f"SLI over the last {window}",
        queries,
        "percentunit",
        "stat",
        f"Share of good events (request objectives) or good time (freshness, calibration) "
        f"over {window}: 1 - {record}.",
        width=12,
    )


def _burn_rate(config: SloConfig, record: str, window: str) -> Panel:
    factors = sorted({burn.factor for burn in BURNS})
    queries = tuple(
        Query(f'{record}{{slo="{o.slo}"}} / (1 - {o.target!r})', o.slo) for o in objectives(config)
    )
    return Panel(
        f"Burn rate over {window}",
        queries,
        "x",
        description=(
            f"Error ratio over {window} / the error budget; 1 spends the budget in exactly "
            f"{BUDGET_PERIOD}. Lines: the page alerts' factors ({', '.join(map(str, factors))})."
        ),
        steps=tuple((factor, "red") for factor in factors),
        width=12,
    )


def _quantiles(
    metric: str, selector: str, quantiles: tuple[float, ...] = (0.5, 0.95, 0.99), by: str = "le"
) -> tuple[Query, ...]:
    legend = " {{route}}" if "route" in by else ""
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{selector}[{RATE}])))",
            f"p{q * 100:g}{legend}",
        )
        for q in quantiles
    )


def _latency(config: SloConfig) -> list[Panel]:
    routes = "|".join(config.latency.routes)
    threshold = config.latency.threshold_s
    return [
        Panel(
            "ETA request latency",
            _quantiles("arrive_http_request_seconds", f'{{route=~"{routes}"}}'),
            "s",
            description=f"Whole-request latency of {routes}; line: the objective's "
            f"threshold ({threshold * 1000:g} ms).",
            steps=((threshold, "red"),),
        ),
        Panel(
            "p99 latency by route",
            _quantiles("arrive_http_request_seconds", "", (0.99,), "le, route"),
            "s",
        ),
        Panel(
            "predict call latency",
            _quantiles("arrive_predict_seconds", ""),
            "s",
            description="One predict call: feature read, model, answers.",
        ),
    ]


def _availability(config: SloConfig) -> list[Panel]:
    record = error_ratio_records(config)[WINDOWS[0]]
    return [
        Panel(
            f"ETA requests answered without a 5xx ({WINDOWS[0]})",
            (Query(f'1 - {record}{{slo="availability"}}', "availability"),),
            "percentunit",
            steps=((config.availability.objective, "green"),),
            base="red",
        ),
        Panel(
            "Requests by status code",
            (Query(f"sum by (code) (rate(arrive_http_requests_total[{RATE}]))", "{{code}}"),),
            "reqps",
        ),
        Panel(
            "Feature store up",
            (Query("min by (instance) (arrive_store_up)", "{{instance}}"),),
            steps=((1.0, "green"),),
            base="red",
        ),
        Panel(
            "Requests in flight",
            (Query("sum by (instance) (arrive_in_flight)", "{{instance}}"),),
        ),
        Panel(
            "Connections refused by reason",
            (
                Query(
                    f"sum by (reason) (rate(arrive_connections_refused_total[{RATE}]))",
                    "{{reason}}",
                ),
            ),
            "reqps",
        ),
    ]


def _fallbacks(config: SloConfig) -> list[Panel]:
    answers = 'arrive_predictions_total{variant=~"$variant"}'
    model = 'arrive_predictions_total{variant=~"$variant",fallback="none"}'
    fallback = 'arrive_predictions_total{variant=~"$variant",fallback!="none"}'
    return [
        Panel(
            "Fallback answers by reason",
            (Query(f"sum by (fallback) (rate({fallback}[{RATE}]))", "{{fallback}}"),),
            "reqps",
        ),
        Panel(
            "Model answer share by variant",
            (
                Query(
                    f"sum by (variant) (rate({model}[{RATE}])) / "
                    f"sum by (variant) (rate({answers}[{RATE}]))",
                    "{{variant}}",
                ),
            ),
            "percentunit",
            steps=((config.model_answers.objective, "green"),),
            base="red",
        ),
        Panel(
            "Failed feature reads by kind",
            (Query(f"sum by (kind) (rate(arrive_store_errors_total[{RATE}]))", "{{kind}}"),),
            "reqps",
        ),
    ]


def _gauge(metric: str, suffix: str = "") -> Query:
    return Query(f"{metric}{{{_MONITOR}}}", _SEGMENT + suffix)


def _accuracy() -> list[Panel]:
    band = Band()
    low, high = band.target - band.tolerance, band.target + band.tolerance
    return [
        Panel("P50 MAE", (_gauge("arrive_online_p50_mae_seconds"),), "s"),
        Panel(
            "Heuristic MAE on the same orders",
            (_gauge("arrive_online_heuristic_mae_seconds"),),
            "s",
        ),
        Panel(
            "MAE below the heuristic's",
            (
                Query(
                    f"1 - arrive_online_p50_mae_seconds{{{_MONITOR}}} / "
                    f"arrive_online_heuristic_mae_seconds{{{_MONITOR}}}",
                    _SEGMENT,
                ),
            ),
            "percentunit",
        ),
        Panel(
            "P90 coverage (95 % interval) and its band",
            (
                _gauge("arrive_online_p90_coverage"),
                _gauge("arrive_online_p90_coverage_lower", " lower"),
                _gauge("arrive_online_p90_coverage_upper", " upper"),
            ),
            "percentunit",
            description=f"Share delivered by the P90, with its 95 % Wilson interval. Band: "
            f"{band.target:g} +- {band.tolerance:g}, the monitor's default (--coverage-target, "
            "--coverage-tolerance).",
            steps=((round(low, 9), "green"), (round(high, 9), "red")),
            base="red",
            area=True,
            width=12,
        ),
        Panel("P50 coverage", (_gauge("arrive_online_p50_coverage"),), "percentunit", width=12),
        Panel("Late rate (actual > P90)", (_gauge("arrive_online_late_rate"),), "percentunit"),
        Panel("P90 - P50 width", (_gauge("arrive_online_p90_width_seconds"),), "s"),
        Panel("Orders in the last window", (_gauge("arrive_online_orders"),)),
    ]


def _calibration() -> list[Panel]:
    drifted = f"arrive_calibration_drift{{{_MONITOR}}}"
    return [
        Panel(
            "Segments with calibration drift",
            (Query(f"count({drifted} == 1) or vector(0)", "segments"),),
            kind="stat",
            steps=((1.0, "red"),),
        ),
        Panel(
            "Segments out of band now",
            (Query(f"{drifted} == 1", table=True),),
            kind="table",
            description="P90 coverage whose 95 % interval lies wholly outside the band.",
            width=16,
        ),
    ]


def _drift(config: SloConfig) -> list[Panel]:
    skew = config.alerts.skew_mismatch_ratio
    return [
        Panel(
            "Feature PSI against the training profile",
            (Query('arrive_feature_psi{version=~"$version"}', "{{version}} {{feature}}"),),
            steps=((PSI_THRESHOLD, "red"),),
            description=f"Line: the monitor's default drift threshold ({PSI_THRESHOLD:g}).",
        ),
        Panel(
            "Drifted features",
            (Query('arrive_feature_drift{version=~"$version"} == 1', table=True),),
            kind="table",
        ),
        Panel(
            "Training/serving skew: mismatch ratio",
            (Query("arrive_feature_skew_mismatch_ratio", "{{feature}}"),),
            "percentunit",
            steps=((skew, "red"),),
            description=f"Line: the FeatureSkew alert's threshold ({skew:g}).",
        ),
    ]


def _freshness(config: SloConfig) -> list[Panel]:
    lag, page = config.freshness.max_lag_s, config.alerts.ingest_lag_s
    return [
        Panel(
            "Ingest watermark lag",
            (Query("max(arrive_ingest_lag_seconds)", "ingest"),),
            "s",
            description=f"Lines: the freshness objective ({lag:g} s), IngestLagHigh ({page:g} s).",
            steps=((lag, "orange"), (page, "red")),
        ),
        Panel(
            "Watermark lag seen by the service",
            (Query("max by (instance) (arrive_feature_watermark_lag_seconds)", "{{instance}}"),),
            "s",
        ),
        Panel(
            "Answers with stale features",
            (
                Query(
                    f"sum(rate(arrive_features_stale_total[{RATE}])) / "
                    f"sum(rate(arrive_predictions_total[{RATE}]))",
                    "stale share",
                ),
            ),
            "percentunit",
        ),
        Panel(
            "Since the last ingest checkpoint",
            (Query("time() - max(arrive_ingest_last_checkpoint_timestamp_seconds)", "ingest"),),
            "s",
            width=12,
        ),
        Panel(
            "Age of the monitor's last window",
            (Query("time() - max(arrive_monitor_last_window_end_timestamp_seconds)", "monitor"),),
            "s",
            width=12,
        ),
    ]


def _ingest(config: SloConfig) -> list[Panel]:
    ratio = config.alerts.dead_letter_ratio
    events = "arrive_ingest_events_total"
    return [
        Panel(
            "Events per second by outcome",
            (Query(f"sum by (outcome) (rate({events}[{RATE}]))", "{{outcome}}"),),
            "ops",
        ),
        Panel(
            "Dead letters by reason",
            (
                Query(
                    f"sum by (reason) (rate(arrive_ingest_dead_letters_total[{RATE}]))",
                    "{{reason}}",
                ),
            ),
            "ops",
        ),
        Panel(
            "Dead-lettered share",
            (
                Query(
                    f'sum(rate({events}{{outcome="dead_lettered"}}[{RATE}])) / '
                    f"sum(rate({events}[{RATE}]))",
                    "dead-lettered",
                ),
            ),
            "percentunit",
            description=f"Line: the IngestDeadLetters alert's threshold ({ratio:g}).",
            steps=((ratio, "red"),),
        ),
    ]


def _prediction_log() -> list[Panel]:
    return [
        Panel(
            "Prediction-log records dropped by reason",
            (
                Query(
                    f"sum by (reason) (rate(arrive_prediction_log_dropped_total[{RATE}]))",
                    "{{reason}}",
                ),
            ),
            "ops",
            width=12,
        ),
        Panel(
            "Records written and failed operations",
            (
                Query(f"sum(rate(arrive_prediction_log_written_total[{RATE}]))", "written"),
                Query(
                    f"sum by (reason) (rate(arrive_prediction_log_failures_total[{RATE}]))",
                    "failed: {{reason}}",
                ),
            ),
            "ops",
            width=12,
        ),
        Panel(
            "Outcomes read by the monitor",
            (
                Query(
                    f"sum by (result) (rate(arrive_monitor_outcomes_total[{RATE}]))", "{{result}}"
                ),
            ),
            "ops",
            width=12,
        ),
        Panel(
            "What the monitor could not join",
            (
                Query(f"sum(rate(arrive_monitor_predictions_expired_total[{RATE}]))", "expired"),
                Query(f"sum(rate(arrive_monitor_late_predictions_total[{RATE}]))", "late"),
                Query(f"sum(rate(arrive_monitor_events_refused_total[{RATE}]))", "refused"),
                Query(
                    f"sum by (reason) (rate(arrive_monitor_log_files_skipped_total[{RATE}]))",
                    "log files skipped: {{reason}}",
                ),
            ),
            "ops",
            description="Predictions without an outcome within the horizon (expired), read "
            "after their window closed (late), undecodable events, unreadable log files.",
            width=12,
        ),
    ]


def _model() -> list[Panel]:
    joined = 'arrive_monitor_joined_total{version=~"$version",variant=~"$variant"}'
    return [
        Panel(
            "Model serving",
            (Query("max by (alias, version, backend) (arrive_model_info) == 1", table=True),),
            kind="table",
        ),
        Panel(
            "Model reloads and checks",
            (
                Query(
                    f"sum by (outcome) (rate(arrive_model_reloads_total[{RATE}]))",
                    "reload {{outcome}}",
                ),
                Query(
                    f"sum by (outcome) (rate(arrive_model_checks_total[{RATE}]))",
                    "check {{outcome}}",
                ),
                Query("max(arrive_model_degraded)", "degraded"),
            ),
        ),
        Panel(
            "Predictions joined to an outcome",
            (
                Query(
                    f"sum by (version, variant) (rate({joined}[{RATE}]))", "{{version}} {{variant}}"
                ),
            ),
            "ops",
        ),
    ]


def _rollout() -> list[Panel]:
    rollout = ""  # one rollout at a time; the version and segment variables do not apply
    rails = (
        "p50_mae_rel",
        "p90_coverage_candidate",
        "late_rate_candidate",
        "cancel_rate_candidate",
    )
    return [
        Panel(
            "Candidate's share of units",
            (Query(f"arrive_rollout_share{rollout}", "{{rollout}}"),),
            "percentunit",
        ),
        Panel(
            "Canary step",
            (Query(f"arrive_rollout_step{rollout}", "{{rollout}} {{phase}}"),),
            description="0-based; -1 in shadow and once the rollout is over.",
        ),
        Panel(
            "Guardrail decisions (1 h)",
            (
                Query(
                    "sum by (rollout, decision) "
                    f"(increase(arrive_rollout_decisions_total{rollout}[1h]))",
                    "{{rollout}} {{decision}}",
                ),
            ),
        ),
        Panel(
            "Guardrail figures of the last verdict",
            tuple(
                Query(f'arrive_rollout_guardrail{{rail="{rail}"}}', f"{{{{rollout}}}} {rail}")
                for rail in rails
            ),
            "percentunit",
            width=12,
        ),
        Panel(
            "Last verdict and idle evaluations",
            (
                Query(f"arrive_rollout_verdict{rollout} == 1", "{{rollout}} {{action}}"),
                Query(f"arrive_rollout_idle_intervals{rollout}", "{{rollout}} idle"),
            ),
            description="Idle: evaluations in a row without a new joined order of the "
            "candidate (RolloutStalled at 15).",
            width=12,
        ),
        Panel(
            "Evaluations by verdict (rate)",
            (
                Query(
                    "sum by (action) "
                    f"(rate(arrive_rollout_evaluations_total{rollout}[$__rate_interval]))",
                    "{{action}}",
                ),
            ),
            width=24,
        ),
    ]
