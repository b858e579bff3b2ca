"""Every Prometheus metric of the ETA service, defined in one place with its labels.

The objects live in ``prometheus_client``'s default registry. With several worker
processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the
workers start: ``prometheus_client`` then keeps each value in a per-process file
and :func:`render` merges them (gauges by the mode given below). Without it,
:func:`render` shows this process's values.

Names (all prefixed ``arrive_``):

* ``predictions_total{variant,fallback}`` — answers; ``fallback="none"`` when the model answered.
* ``predict_seconds`` — time of one ``predict`` call (one request, single or batch).
* ``model_info{alias,version,backend}`` — 1 for the model serving now (backend of its trees).
* ``model_reloads_total{outcome}`` — ``loaded`` or ``refused`` (checksum, check or load failed).
* ``model_checks_total{outcome}`` — model checks in a child process: ``ok``, ``unverified``
  (no reference predictions to compare with) or ``broken``.
* ``model_degraded`` — 1 while the version serving is not the alias's (it was refused).
* ``prediction_log_dropped_total{reason}`` — prediction-log records lost: ``buffer_full``
  (the in-memory buffer), ``no_space``, ``not_permitted``, ``not_found`` or ``io_error``
  (a failed write: the records of that write and of the unpublished file in progress).
* ``prediction_log_written_total`` — records in published (complete, readable) files.
* ``prediction_log_failures_total{reason}`` — failed prediction-log file operations.
* ``shadow_scored_total`` — orders the rollout's candidate scored off the hot path (shadow).
* ``shadow_dropped_total{reason}`` — shadow work dropped: ``queue_full`` (the worker's
  bounded queue), ``model_error`` (the candidate raised or returned a non-finite value).
* ``rollout_candidate{rollout,version}`` — 1 while a worker holds the candidate loaded
  (the highest over live workers).
* ``store_errors_total{kind}`` — ``unavailable``, ``error`` or ``deadline`` feature reads.
* ``in_flight`` — requests in progress (summed over live workers).
* ``connections_refused_total{reason}`` — connections answered 431, 408 or 503 and closed
  by the request limits: ``header_bytes``, ``header_count``, ``header_timeout``,
  ``body_timeout``, ``max_connections``.
* ``store_up`` — 1 while the feature store answers its pings, 0 while it does not
  (the lowest over live workers); readiness does not depend on it.
* ``http_requests_total{route,code}`` — every HTTP answer, by route template (``other``
  for a path no route serves) and status code; recorded by
  :class:`arrive.serving.http.measured.Measured`.
* ``http_request_seconds{route}`` — whole-request latency, from the app's first call to
  the answer's last byte handed to the server (buckets :data:`HTTP_BUCKETS`).
* ``features_stale_total`` — answers whose features had at least one stale value (a
  latest observation older than its TTL, or aggregates of an ingest pipeline that lags),
  whether the model or the heuristic then answered; over ``predictions_total``, the share
  of stale answers.
* ``feature_watermark_lag_seconds`` — read time minus the ingest engine's watermark, as the
  last feature read saw it (the highest over live workers; +Inf when the store holds no
  watermark: no ingest ever wrote to it).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE: Final = re.compile(r"^gauge_live[a-z]*_(\d+)\.db$")
"""A live-mode gauge's file (livesum, livemax, ...) and the process id that wrote it."""

PREDICTIONS: Final = Counter(
    "arrive_predictions", "ETA answers by variant and fallback reason", ["variant", "fallback"]
)
PREDICT_SECONDS: Final = Histogram(
    "arrive_predict_seconds",
    "Time of one predict call (one request: feature read, model, answers)",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
MODEL_INFO: Final = Gauge(
    "arrive_model_info",
    "1 for the model version serving now, with the backend of its trees",
    ["alias", "version", "backend"],
    multiprocess_mode="livemax",
)
MODEL_RELOADS: Final = Counter(
    "arrive_model_reloads", "Model loads by outcome (loaded, refused)", ["outcome"]
)
MODEL_CHECKS: Final = Counter(
    "arrive_model_checks",
    "Model checks in a child process by outcome (ok, unverified, broken)",
    ["outcome"],
)
MODEL_DEGRADED: Final = Gauge(
    "arrive_model_degraded",
    "1 while the version serving is not the alias's (the alias's was refused)",
    multiprocess_mode="livemax",
)
LOG_DROPPED: Final = Counter(
    "arrive_prediction_log_dropped",
    "Prediction-log records lost, by reason (buffer_full, or the failure that lost them)",
    ["reason"],
)
LOG_WRITTEN: Final = Counter(
    "arrive_prediction_log_written", "Prediction-log records in published Parquet files"
)
LOG_FAILURES: Final = Counter(
    "arrive_prediction_log_failures",
    "Failed prediction-log file operations (open, write, publish), by reason",
    ["reason"],
)
SHADOW_SCORED: Final = Counter(
    "arrive_shadow_scored", "Orders scored by the rollout's candidate off the hot path"
)
SHADOW_DROPPED: Final = Counter(
    "arrive_shadow_dropped", "Shadow work dropped (queue_full, model_error)", ["reason"]
)
ROLLOUT_CANDIDATE: Final = Gauge(
    "arrive_rollout_candidate",
    "1 while the rollout's candidate is loaded beside the control",
    ["rollout", "version"],
    multiprocess_mode="livemax",
)
STORE_ERRORS: Final = Counter(
    "arrive_store_errors", "Failed feature reads (unavailable, error, deadline)", ["kind"]
)
IN_FLIGHT: Final = Gauge("arrive_in_flight", "Requests in progress", multiprocess_mode="livesum")
CONNECTIONS_REFUSED: Final = Counter(
    "arrive_connections_refused",
    "Connections answered and closed by the request limits, by reason",
    ["reason"],
)
STORE_UP: Final = Gauge(
    "arrive_store_up",
    "1 while the feature store answers its pings, else 0",
    multiprocess_mode="livemin",
)

HTTP_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025,
    0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
"""Bounds of ``http_request_seconds``: fine around the latency objective (25 ms)."""
HTTP_REQUESTS: Final = Counter(
    "arrive_http_requests", "HTTP answers by route template and status code", ["route", "code"]
)
HTTP_REQUEST_SECONDS: Final = Histogram(
    "arrive_http_request_seconds",
    "Whole-request latency by route template",
    ["route"],
    buckets=HTTP_BUCKETS,
)

FEATURES_STALE: Final = Counter(
    "arrive_features_stale", "Answers whose features had at least one stale value"
)
WATERMARK_LAG: Final = Gauge(
    "arrive_feature_watermark_lag_seconds",
    "Read time minus the ingest watermark, as the last feature read saw it",
    multiprocess_mode="livemax",
)


def record_freshness(at_us: int, watermark_us: float | None, stale_answers: int) -> None:
    """Count ``stale_answers`` and show the watermark lag of a feature read at ``at_us``
    (epoch µs) that found the engine's watermark at ``watermark_us`` (None: none stored)."""
    if stale_answers:
        FEATURES_STALE.inc(stale_answers)
    WATERMARK_LAG.set(math.inf if watermark_us is None else (at_us - watermark_us) / 1e6)


def render() -> tuple[bytes, str]:
    """The exposition text of every metric (merged over workers in multiprocess mode)
    and its content type, for a ``/metrics`` route."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        registry.register(_WorkerFiles(directory))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class _WorkerFiles(Collector):
    """prometheus_client's multiprocess collector without its empty-file failure, and
    without the live gauges of workers that are gone.

    A worker creates each metrics file before sizing it; a scrape in between reads an
    empty file and fails whole (a 500 on /metrics), and a file left empty by a worker
    killed at that moment fails every later scrape (prometheus/client_python#1199,
    unfixed in the pinned release). Empty files hold no values yet: they are skipped.
    A live gauge (requests in flight, the model serving) only holds while its worker
    runs; the file of a worker that was killed (and restarted under a new process id)
    would otherwise count forever, so it is skipped too. Counters and histograms of
    gone workers still count: what they counted happened.
    """

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = [
            str(path)
            for path in self.directory.glob("*.db")
            if _filled(path) and not _of_gone_worker(path.name)
        ]
        merged: Iterable[Metric] = MultiProcessCollector.merge(  # type: ignore[no-untyped-call]
            files, accumulate=True
        )
        return merged


def _filled(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:  # removed since the listing
        return False


def _of_gone_worker(name: str) -> bool:
    """True for the live-gauge file ``name`` of a process that no longer runs."""
    match = _LIVE_FILE.match(name)
    if match is None:
        return False
    try:
        os.kill(int(match.group(1)), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def set_model_info(alias: str, version: str | None, backend: str) -> None:
    """Show ``version`` (and its backend) as the one serving ``alias``; zero the others."""
    for labels in _SHOWN:
        MODEL_INFO.labels(*labels).set(0)
    _SHOWN.clear()
    if version is not None:
        _SHOWN.append((alias, version, backend))
        MODEL_INFO.labels(alias, version, backend).set(1)


_SHOWN: list[tuple[str, str, str]] = []
