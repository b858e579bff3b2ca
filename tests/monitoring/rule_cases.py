"""The promtool unit tests of every alert, as a table: synthetic series (one sample a
minute, or every ``step``), an evaluation time, and whether the alert fires then (with
which labels).

Each alert has at least one case where it fires and one where it stays silent
(test_promtool.py checks it), most silent cases sitting just where a naive rule would
fire: a short error spike, a normal share of fallbacks, a drift shorter than the
alert's ``for``, a counter that stopped rising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

ETA: Final = 'route="/v1/eta"'
SEGMENT: Final = 'version="3",variant="production"'
NODE: Final = 'job="arrive",instance="eta-1:8000"'
NODE_LABELS: Final = {"job": "arrive", "instance": "eta-1:8000"}
ROLLOUT: Final = 'rollout="2-1"'
MONITOR_UP: Final = 'up{job="arrive-monitor",instance="monitor:9108"}'


@dataclass(frozen=True)
class Case:
    """``alert`` evaluated at ``at`` on ``series`` (a sample and a rule evaluation every
    ``step``): firing with ``labels``, or silent."""

    alert: str
    why: str
    series: dict[str, str]
    at: str
    fires: bool
    labels: dict[str, str] = field(default_factory=dict)
    step: str = "1m"


def _burn(slo: str) -> dict[str, str]:
    return {"severity": "page", "slo": slo}


def _ticket(slo: str) -> dict[str, str]:
    return {"severity": "ticket", "slo": slo}


SLOW: Final = "30m"
"""The step of the 3-day cases: 151 samples cover 75 hours."""


def _every(period: int, bad: str, good: str, steps: int = 150) -> str:
    """A gauge at ``bad`` one step in ``period``, else ``good``."""
    return " ".join(bad if i % period == 0 else good for i in range(steps + 1))


CASES: Final = (
    Case(
        "RolloutRolledBack",
        "the guardrails roll the candidate back at minute 10",
        {
            f'arrive_rollout_decisions_total{{{ROLLOUT},decision="rolled_back"}}': "0x10 1x20",
            f'arrive_rollout_decisions_total{{{ROLLOUT},decision="advanced"}}': "0x30",
        },
        "15m",
        True,
        {"severity": "page", "rollout": "2-1"},
    ),
    Case(
        "RolloutRolledBack",
        "the guardrails ramp the candidate twice, never roll back",
        {
            f'arrive_rollout_decisions_total{{{ROLLOUT},decision="rolled_back"}}': "0x30",
            f'arrive_rollout_decisions_total{{{ROLLOUT},decision="advanced"}}': "0x10 1x10 2x10",
        },
        "25m",
        False,
    ),
    Case(
        "RolloutStalled",
        "no new candidate order joined for 25 evaluations, the monitor up",
        {
            f"arrive_rollout_active{{{ROLLOUT}}}": "1x30",
            f"arrive_rollout_idle_intervals{{{ROLLOUT}}}": "0+1x30",
            MONITOR_UP: "1x30",
        },
        "25m",
        True,
        {"severity": "ticket", "rollout": "2-1"},
    ),
    Case(
        "RolloutStalled",
        "10 idle evaluations (a quiet spell), then orders again",
        {
            f"arrive_rollout_active{{{ROLLOUT}}}": "1x30",
            f"arrive_rollout_idle_intervals{{{ROLLOUT}}}": "0+1x10 0x20",
            MONITOR_UP: "1x30",
        },
        "30m",
        False,
    ),
    Case(
        "RolloutStalled",
        "the monitor goes down mid-rollout: its series stop, up is 0",
        {
            f"arrive_rollout_active{{{ROLLOUT}}}": "1x10 _x30",
            f"arrive_rollout_idle_intervals{{{ROLLOUT}}}": "0x10 _x30",
            MONITOR_UP: "1x10 0x30",
        },
        "25m",
        True,
        {"severity": "ticket", "rollout": "2-1"},
    ),
    Case(
        "RolloutStalled",
        "the monitor goes down after the rollout ended",
        {
            f"arrive_rollout_active{{{ROLLOUT}}}": "1x5 0x5 _x30",
            f"arrive_rollout_idle_intervals{{{ROLLOUT}}}": "0x10 _x30",
            MONITOR_UP: "1x10 0x30",
        },
        "25m",
        False,
    ),
    Case(
        "AvailabilityBudgetBurn",
        "5 % of ETA requests answer 500 for 100 minutes",
        {
            f'arrive_http_requests_total{{{ETA},code="200"}}': "0+1000x100",
            f'arrive_http_requests_total{{{ETA},code="500"}}': "0+50x100",
        },
        "70m",
        True,
        _burn("availability"),
    ),
    Case(
        "AvailabilityBudgetBurn",
        "0.1 % of requests answer 500: the budget burns at 1x",
        {
            f'arrive_http_requests_total{{{ETA},code="200"}}': "0+1000x100",
            f'arrive_http_requests_total{{{ETA},code="500"}}': "0+1x100",
        },
        "70m",
        False,
    ),
    Case(
        "AvailabilityBudgetBurn",
        "a 3-minute spike of 500s: the 5 m window burns, the 1 h one does not",
        {
            f'arrive_http_requests_total{{{ETA},code="200"}}': "0+1000x65",
            f'arrive_http_requests_total{{{ETA},code="500"}}': "0x62 100 200 300",
        },
        "65m",
        False,
    ),
    Case(
        "AvailabilityBudgetBurn",
        "500s on /metrics are not ETA answers",
        {
            f'arrive_http_requests_total{{{ETA},code="200"}}': "0+1000x100",
            'arrive_http_requests_total{route="/metrics",code="500"}': "0+500x100",
        },
        "70m",
        False,
    ),
    Case(
        "LatencyBudgetBurn",
        "30 % of ETA requests take more than 25 ms",
        {
            f'arrive_http_request_seconds_bucket{{{ETA},le="0.025"}}': "0+700x100",
            f"arrive_http_request_seconds_count{{{ETA}}}": "0+1000x100",
        },
        "70m",
        True,
        _burn("latency"),
    ),
    Case(
        "LatencyBudgetBurn",
        "0.5 % of requests are slow: under the 1 % budget",
        {
            f'arrive_http_request_seconds_bucket{{{ETA},le="0.025"}}': "0+995x100",
            f"arrive_http_request_seconds_count{{{ETA}}}": "0+1000x100",
        },
        "70m",
        False,
    ),
    Case(
        "ModelAnswersBudgetBurn",
        "90 % of answers from the heuristic (the store is unreachable)",
        {
            'arrive_predictions_total{variant="production",fallback="none"}': "0+100x100",
            'arrive_predictions_total{variant="production",fallback="store_unavailable"}': (
                "0+900x100"
            ),
        },
        "70m",
        True,
        _burn("model_answers"),
    ),
    Case(
        "ModelAnswersBudgetBurn",
        "10 % of answers from the heuristic: more than the budget, slower than 6x",
        {
            'arrive_predictions_total{variant="production",fallback="none"}': "0+900x100",
            'arrive_predictions_total{variant="production",fallback="stale_features"}': (
                "0+100x100"
            ),
        },
        "70m",
        False,
    ),
    Case(
        "FreshnessBudgetBurn",
        "the ingest lag is 10 minutes for an hour",
        {"arrive_ingest_lag_seconds": "5x30 600x60"},
        "90m",
        True,
        _burn("freshness"),
    ),
    Case(
        "FreshnessBudgetBurn",
        "the lag exceeds 60 s for 4 minutes only",
        {"arrive_ingest_lag_seconds": "5x79 120x3 5x5"},
        "85m",
        False,
    ),
    Case(
        "CalibrationBudgetBurn",
        "the overall P90 coverage is out of band for 90 minutes",
        {
            f'arrive_calibration_drift{{{SEGMENT},segment_kind="all",segment="all"}}': "1x90",
        },
        "80m",
        True,
        _burn("calibration"),
    ),
    Case(
        "CalibrationBudgetBurn",
        "one market is out of band, the whole is not",
        {
            f'arrive_calibration_drift{{{SEGMENT},segment_kind="all",segment="all"}}': "0x90",
            f'arrive_calibration_drift{{{SEGMENT},segment_kind="market",segment="berlin"}}': (
                "1x90"
            ),
        },
        "80m",
        False,
    ),
    Case(
        "CalibrationDrift",
        "one market out of band for 30 minutes",
        {
            f'arrive_calibration_drift{{{SEGMENT},segment_kind="market",segment="berlin"}}': (
                "1x30"
            ),
        },
        "25m",
        True,
        {
            "severity": "ticket",
            "version": "3",
            "variant": "production",
            "segment_kind": "market",
            "segment": "berlin",
        },
    ),
    Case(
        "CalibrationDrift",
        "out of band for 10 minutes: shorter than the alert's 15",
        {
            f'arrive_calibration_drift{{{SEGMENT},segment_kind="market",segment="berlin"}}': (
                "0x20 1x10"
            ),
        },
        "30m",
        False,
    ),
    Case(
        "FeatureDrift",
        "local_hour drifted for 40 minutes",
        {'arrive_feature_drift{version="3",feature="local_hour"}': "1x40"},
        "35m",
        True,
        {"severity": "ticket", "version": "3", "feature": "local_hour"},
    ),
    Case(
        "FeatureDrift",
        "no feature above its PSI threshold",
        {
            'arrive_feature_drift{version="3",feature="local_hour"}': "0x40",
            'arrive_feature_psi{version="3",feature="local_hour"}': "0.05x40",
        },
        "35m",
        False,
    ),
    Case(
        "FeatureSkew",
        "half the sampled answers served another local_hour than offline",
        {'arrive_feature_skew_mismatch_ratio{feature="local_hour"}': "0.5x20"},
        "20m",
        True,
        {"severity": "page", "feature": "local_hour"},
    ),
    Case(
        "FeatureSkew",
        "0.1 % mismatches: under the 1 % threshold",
        {'arrive_feature_skew_mismatch_ratio{feature="local_hour"}': "0.001x20"},
        "20m",
        False,
    ),
    Case(
        "IngestLagHigh",
        "ingest 15 minutes behind for 10 minutes",
        {"arrive_ingest_lag_seconds": "900x10"},
        "10m",
        True,
        {"severity": "page"},
    ),
    Case(
        "IngestLagHigh",
        "ingest 100 s behind: stale for the SLO, not stalled",
        {"arrive_ingest_lag_seconds": "100x10"},
        "10m",
        False,
    ),
    Case(
        "IngestDeadLetters",
        "9 % of events dead-lettered",
        {
            'arrive_ingest_events_total{outcome="applied"}': "0+1000x30",
            'arrive_ingest_events_total{outcome="dead_lettered"}': "0+100x30",
        },
        "30m",
        True,
        {"severity": "ticket"},
    ),
    Case(
        "IngestDeadLetters",
        "0.1 % dead-lettered: a few bad events are normal",
        {
            'arrive_ingest_events_total{outcome="applied"}': "0+1000x30",
            'arrive_ingest_events_total{outcome="dead_lettered"}': "0+1x30",
        },
        "30m",
        False,
    ),
    Case(
        "FeatureStoreDown",
        "the store is down for 5 minutes",
        {f"arrive_store_up{{{NODE}}}": "1x5 0x5"},
        "10m",
        True,
        {"severity": "page", **NODE_LABELS},
    ),
    Case(
        "FeatureStoreDown",
        "one failed ping, then up again",
        {f"arrive_store_up{{{NODE}}}": "1x8 0 1x2"},
        "11m",
        False,
    ),
    Case(
        "ModelNotLoaded",
        "every answer is the heuristic's for lack of a model",
        {
            f'arrive_predictions_total{{{NODE},variant="heuristic",fallback="no_model"}}': (
                "0+10x20"
            ),
        },
        "15m",
        True,
        {"severity": "page", **NODE_LABELS},
    ),
    Case(
        "ModelNotLoaded",
        "model_info shows no version serving",
        {f'arrive_model_info{{{NODE},alias="production",version="1",backend="lleaves"}}': "0x20"},
        "15m",
        True,
        {"severity": "page", **NODE_LABELS},
    ),
    Case(
        "ModelNotLoaded",
        "version 1 serves; no_model answers stopped long ago",
        {
            f'arrive_model_info{{{NODE},alias="production",version="1",backend="lleaves"}}': "1x20",
            f'arrive_predictions_total{{{NODE},variant="heuristic",fallback="no_model"}}': "7x20",
        },
        "15m",
        False,
    ),
    Case(
        "PredictionLogDropping",
        "records dropped for lack of disk space",
        {f'arrive_prediction_log_dropped_total{{{NODE},reason="no_space"}}': "0+5x20"},
        "15m",
        True,
        {"severity": "ticket", "reason": "no_space", **NODE_LABELS},
    ),
    Case(
        "PredictionLogDropping",
        "drops long ago, none since",
        {f'arrive_prediction_log_dropped_total{{{NODE},reason="no_space"}}': "3x20"},
        "15m",
        False,
    ),
    Case(
        "RetrainFailed",
        "the last run was blocked by validation, after a success the day before",
        {
            'arrive_retrain_last_run_timestamp_seconds{outcome="registered"}': "1000x20",
            'arrive_retrain_last_run_timestamp_seconds{outcome="blocked"}': "87400x20",
        },
        "10m",
        True,
        {"severity": "ticket"},
    ),
    Case(
        "RetrainFailed",
        "a run failed once, the next one succeeded",
        {
            'arrive_retrain_last_run_timestamp_seconds{outcome="failed"}': "1000x20",
            'arrive_retrain_last_run_timestamp_seconds{outcome="unchanged"}': "87400x20",
        },
        "10m",
        False,
    ),
    Case(
        "RetrainStale",
        "the last successful run is 3 days old (the loop keeps being skipped)",
        {
            'arrive_retrain_last_run_timestamp_seconds{outcome="rolled_out"}': "0x150",
            'arrive_retrain_last_run_timestamp_seconds{outcome="skipped"}': "0+1800x150",
        },
        "74h",
        True,
        {"severity": "ticket"},
        SLOW,
    ),
    Case(
        "RetrainStale",
        "daily successes: the newest is never more than a day old",
        {
            'arrive_retrain_last_run_timestamp_seconds{outcome="promoted"}': " ".join(
                str(86400 * (i // 48)) for i in range(151)
            ),
        },
        "74h",
        False,
        step=SLOW,
    ),
    Case(
        "AvailabilityBudgetBurnSlow",
        "0.3 % of requests answer 500 for 3 days: 3x the budget, too slow to page",
        {
            f'arrive_http_requests_total{{{ETA},code="200"}}': "0+10000x150",
            f'arrive_http_requests_total{{{ETA},code="500"}}': "0+30x150",
        },
        "74h",
        True,
        _ticket("availability"),
        SLOW,
    ),
    Case(
        "AvailabilityBudgetBurnSlow",
        "the same 500s, stopped 8 hours ago: the 3-day window burns, the 6-hour one not",
        {
            f'arrive_http_requests_total{{{ETA},code="200"}}': "0+10000x150",
            f'arrive_http_requests_total{{{ETA},code="500"}}': "0+30x134 4020x16",
        },
        "74h",
        False,
        step=SLOW,
    ),
    Case(
        "LatencyBudgetBurnSlow",
        "3 % of requests slower than 25 ms for 3 days",
        {
            f'arrive_http_request_seconds_bucket{{{ETA},le="0.025"}}': "0+9700x150",
            f"arrive_http_request_seconds_count{{{ETA}}}": "0+10000x150",
        },
        "74h",
        True,
        _ticket("latency"),
        SLOW,
    ),
    Case(
        "LatencyBudgetBurnSlow",
        "0.5 % slow for 3 days: within the budget",
        {
            f'arrive_http_request_seconds_bucket{{{ETA},le="0.025"}}': "0+9950x150",
            f"arrive_http_request_seconds_count{{{ETA}}}": "0+10000x150",
        },
        "74h",
        False,
        step=SLOW,
    ),
    Case(
        "ModelAnswersBudgetBurnSlow",
        "10 % heuristic answers for 3 days: twice the budget",
        {
            'arrive_predictions_total{variant="production",fallback="none"}': "0+900x150",
            'arrive_predictions_total{variant="production",fallback="stale_features"}': (
                "0+100x150"
            ),
        },
        "74h",
        True,
        _ticket("model_answers"),
        SLOW,
    ),
    Case(
        "ModelAnswersBudgetBurnSlow",
        "3 % heuristic answers: within the budget",
        {
            'arrive_predictions_total{variant="production",fallback="none"}': "0+970x150",
            'arrive_predictions_total{variant="production",fallback="stale_features"}': (
                "0+30x150"
            ),
        },
        "74h",
        False,
        step=SLOW,
    ),
    Case(
        "FreshnessBudgetBurnSlow",
        "the lag above 60 s one step in 10 (10 % of the time) for 3 days",
        {"arrive_ingest_lag_seconds": _every(10, "600", "5")},
        "74h",
        True,
        _ticket("freshness"),
        SLOW,
    ),
    Case(
        "FreshnessBudgetBurnSlow",
        "the lag above 60 s one step in 200 (0.5 % of the time)",
        {"arrive_ingest_lag_seconds": _every(200, "600", "5")},
        "74h",
        False,
        step=SLOW,
    ),
    Case(
        "CalibrationBudgetBurnSlow",
        "the overall coverage out of band 20 % of the time for 3 days",
        {
            f'arrive_calibration_drift{{{SEGMENT},segment_kind="all",segment="all"}}': _every(
                5, "1", "0"
            ),
        },
        "74h",
        True,
        _ticket("calibration"),
        SLOW,
    ),
    Case(
        "CalibrationBudgetBurnSlow",
        "out of band 2 % of the time",
        {
            f'arrive_calibration_drift{{{SEGMENT},segment_kind="all",segment="all"}}': _every(
                50, "1", "0"
            ),
        },
        "74h",
        False,
        step=SLOW,
    ),
)
