"""Watching the promises after they are made.

* :mod:`arrive.monitoring.metrics` — every Prometheus metric of the ETA service.
* :mod:`arrive.monitoring.prediction_log` — the log of every answer, as Parquet files.
* :mod:`arrive.monitoring.outcome` — answers joined to what really happened.
"""
