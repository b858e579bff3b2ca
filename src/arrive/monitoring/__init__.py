"""Watching the promises after they are made.

* :mod:`arrive.monitoring.metrics` — every Prometheus metric of the ETA service.
* :mod:`arrive.monitoring.prediction_log` — the log of every answer, as Parquet files.
* :mod:`arrive.monitoring.join` — predictions joined to outcomes, in event time (no IO).
* :mod:`arrive.monitoring.log_reader` — the log's published files as join rows.
* :mod:`arrive.monitoring.outcome_events` — outcome events decoded a batch at a time.
* :mod:`arrive.monitoring.quality` — online quality and calibration drift per segment.
* :mod:`arrive.monitoring.baseline` — the heuristic's P50 for the model's orders.
* :mod:`arrive.monitoring.checkpoint` — the monitor's atomic checkpoint.
* :mod:`arrive.monitoring.monitor` — ``arrive monitor``'s loop: read, join, write, commit.
* :mod:`arrive.monitoring.monitor_http` — the monitor's ``/metrics``, ``/healthz`` and ``/status``.
* :mod:`arrive.monitoring.status_page` — the status page (``/status``): what it shows in
  :mod:`arrive.monitoring.status_state`, its plots in
  :mod:`arrive.monitoring.status_plots`; :mod:`arrive.monitoring.prometheus_api` — queries
  to Prometheus for what the monitor does not measure.
* :mod:`arrive.monitoring.outcome` — the demo's answers joined and checked against offline.
* :mod:`arrive.monitoring.drift` — served features against the model's reference profile
  (:mod:`arrive.models.profile`): PSI per feature.
* :mod:`arrive.monitoring.skew` — served features against the offline builder's, in production.
* :mod:`arrive.monitoring.drift_metrics` — the drift and skew gauges of ``arrive monitor``.
* :mod:`arrive.monitoring.ingest_metrics` — the metrics of ``arrive ingest --metrics-port``.
"""
