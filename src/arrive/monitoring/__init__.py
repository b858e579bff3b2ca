"""Watching the promises after they are made.

* :mod:`arrive.monitoring.metrics` — every Prometheus metric of the ETA service.
* :mod:`arrive.monitoring.prediction_log` — the log of every answer, as Parquet files.
* :mod:`arrive.monitoring.outcome` — answers joined to what really happened.
* :mod:`arrive.monitoring.drift` — served features against that profile (PSI per feature).
* :mod:`arrive.monitoring.skew` — served features against the offline builder's, in production.
* :mod:`arrive.monitoring.drift_metrics` — the drift and skew gauges of ``arrive monitor``.
* :mod:`arrive.monitoring.ingest_metrics` — the metrics of ``arrive ingest --metrics-port``.
"""
