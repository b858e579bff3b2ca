"""The metric names of the shared metrics contract (issue 20), as exposed (counters with
``_total``, histograms with their ``_bucket``/``_sum``/``_count`` series)."""

from __future__ import annotations

from typing import Final

_HISTOGRAMS: Final = ("arrive_predict_seconds", "arrive_http_request_seconds")

EXPOSED: Final = frozenset(
    {
        # arrive serve
        "arrive_predictions_total",
        "arrive_model_info",
        "arrive_model_reloads_total",
        "arrive_model_checks_total",
        "arrive_model_degraded",
        "arrive_prediction_log_dropped_total",
        "arrive_prediction_log_written_total",
        "arrive_prediction_log_failures_total",
        "arrive_store_errors_total",
        "arrive_in_flight",
        "arrive_connections_refused_total",
        "arrive_store_up",
        "arrive_http_requests_total",
        "arrive_features_stale_total",
        "arrive_feature_watermark_lag_seconds",
        *_HISTOGRAMS,
        *(f"{name}_{part}" for name in _HISTOGRAMS for part in ("bucket", "sum", "count")),
        # arrive ingest
        "arrive_ingest_events_total",
        "arrive_ingest_dead_letters_total",
        "arrive_ingest_lag_seconds",
        "arrive_ingest_last_checkpoint_timestamp_seconds",
        # arrive retrain --every
        "arrive_retrain_runs_total",
        "arrive_retrain_last_run_timestamp_seconds",
        # arrive monitor
        "arrive_monitor_joined_total",
        "arrive_monitor_outcomes_total",
        "arrive_monitor_log_files_skipped_total",
        "arrive_monitor_last_window_end_timestamp_seconds",
        "arrive_online_orders",
        "arrive_online_p50_mae_seconds",
        "arrive_online_heuristic_mae_seconds",
        "arrive_online_p50_coverage",
        "arrive_online_p90_coverage",
        "arrive_online_p90_coverage_lower",
        "arrive_online_p90_coverage_upper",
        "arrive_online_late_rate",
        "arrive_online_p90_width_seconds",
        "arrive_calibration_drift",
        "arrive_feature_psi",
        "arrive_feature_drift",
        "arrive_feature_skew_mismatch_ratio",
        "arrive_rollout_step",
        "arrive_rollout_share",
        "arrive_rollout_active",
        "arrive_rollout_paused",
        "arrive_rollout_idle_intervals",
        "arrive_rollout_verdict",
        "arrive_rollout_guardrail",
        "arrive_rollout_evaluations_total",
        "arrive_rollout_decisions_total",
    }
)
