"""The monitor's own HTTP endpoint: ``/metrics`` (Prometheus text), ``/healthz`` and, when
given a page, ``/status`` (:mod:`arrive.monitoring.status_page`).

Metric names follow the monitoring contract (all prefixed ``arrive_``):

* ``monitor_joined_total{version,variant}`` — predictions joined to an outcome.
* ``monitor_outcomes_total{result}`` — ``joined``, ``unknown_order``, ``duplicate``,
  ``too_late`` or ``cancelled``.
* ``monitor_predictions_expired_total`` — predictions whose order had no outcome
  within the horizon; ``monitor_late_predictions_total`` — predictions read after
  their window closed (dropped); ``monitor_events_refused_total`` — undecodable events.
* ``monitor_log_files_skipped_total{reason}`` — ``truncated``, ``corrupt`` or ``schema``.
* ``monitor_last_window_end_timestamp_seconds`` — end of the last closed window.
* ``online_orders``, ``online_p50_mae_seconds``, ``online_heuristic_mae_seconds``,
  ``online_p50_coverage``, ``online_p90_coverage`` (with ``_lower`` / ``_upper``, the
  95 % Wilson interval), ``online_late_rate``, ``online_p90_width_seconds`` and
  ``calibration_drift`` — ``{version,variant,segment_kind,segment}``, of the last
  closed window.

Counters are totals since the monitor's first start: they are restored from the
checkpoint, so a restart does not reset them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

import polars as pl
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from arrive.monitoring.join import RESULTS
from arrive.monitoring.log_reader import SKIP_REASONS

logger = logging.getLogger(__name__)
LABELS: Final = ["version", "variant", "segment_kind", "segment"]
GAUGES: Final = (
    ("arrive_online_orders", "orders", "Orders joined in the last closed window"),
    ("arrive_online_p50_mae_seconds", "p50_mae_s", "P50 mean absolute error"),
    ("arrive_online_heuristic_mae_seconds", "heuristic_mae_s", "The heuristic's P50 MAE"),
    ("arrive_online_p50_coverage", "p50_coverage", "Share delivered by the P50"),
    ("arrive_online_p90_coverage", "p90_coverage", "Share delivered by the P90"),
    ("arrive_online_p90_coverage_lower", "p90_coverage_lower", "95 % Wilson lower bound"),
    ("arrive_online_p90_coverage_upper", "p90_coverage_upper", "95 % Wilson upper bound"),
    ("arrive_online_late_rate", "late_rate", "Share delivered after the P90"),
    ("arrive_online_p90_width_seconds", "p90_width_s", "Mean P90 - P50"),
    ("arrive_calibration_drift", "calibration_drift", "1 when P90 coverage is surely off band"),
)
Snapshot = Callable[[], tuple[dict[str, int], pl.DataFrame]]
"""Returns the monitor's totals and the last closed window's quality rows."""


class MonitorCollector:
    """Builds the monitor's metrics from a :data:`Snapshot` at each scrape."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        counts, latest = self._snapshot()
        yield from _counters(counts)
        window_end = GaugeMetricFamily(
            "arrive_monitor_last_window_end_timestamp_seconds", "End of the last closed window"
        )
        if not latest.is_empty():
            end = latest.get_column("window_end").max()
            window_end.add_metric([], end.timestamp())  # type: ignore[union-attr]
        yield window_end
        yield from _gauges(latest)


def _counters(counts: dict[str, int]) -> Iterator[Metric]:
    joined = CounterMetricFamily(
        "arrive_monitor_joined", "Predictions joined to an outcome", labels=["version", "variant"]
    )
    for key, value in sorted(counts.items()):
        if key.startswith("joined:"):
            joined.add_metric(key.removeprefix("joined:").split("|", 1), value)
    yield joined
    outcomes = CounterMetricFamily("arrive_monitor_outcomes", "Outcome events", labels=["result"])
    for result in RESULTS:
        outcomes.add_metric([result], counts.get(f"outcome:{result}", 0))
    yield outcomes
    skipped = CounterMetricFamily(
        "arrive_monitor_log_files_skipped", "Unreadable prediction-log files", labels=["reason"]
    )
    for reason in SKIP_REASONS:
        skipped.add_metric([reason], counts.get(f"skipped:{reason}", 0))
    yield skipped
    for name, key, text in (
        ("arrive_monitor_predictions_expired", "expired", "Predictions without outcome"),
        ("arrive_monitor_late_predictions", "late_prediction", "Predictions after their window"),
        ("arrive_monitor_events_refused", "refused", "Undecodable events"),
    ):
        yield CounterMetricFamily(name, text, value=counts.get(key, 0))


def _gauges(latest: pl.DataFrame) -> Iterator[Metric]:
    rows = latest.to_dicts()
    for name, column, text in GAUGES:
        family = GaugeMetricFamily(name, text, labels=LABELS)
        for row in rows:
            value = row[column]
            if value is not None:
                family.add_metric([str(row[label]) for label in LABELS], float(value))
        yield family


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/status`` on ``host:port`` in a daemon thread.

    ``health`` returns ``(ok, message)``; ``/healthz`` answers 200 or 503 with the message.
    ``status`` returns the status page's HTML (None: no ``/status``, a 404).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Callable[[], tuple[bool, str]],
        port: int,
        host: str = "127.0.0.1",
        *,
        status: Callable[[], str] | None = None,
    ) -> None:
        handler = _handler(registry, health, status)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(
    registry: CollectorRegistry,
    health: Callable[[], tuple[bool, str]],
    status: Callable[[], str] | None,
) -> type[BaseHTTPRequestHandler]:
    routes = "/metrics, /healthz" + (" or /status" if status else "")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, message = health()
                self._send(200 if ok else 503, message.encode() + b"\n", "text/plain")
            elif path == "/status" and status is not None:
                self._status(status)
            else:
                self._send(404, f"not found: try {routes}\n".encode(), "text/plain")

        def _status(self, page: Callable[[], str]) -> None:
            try:
                html = page()
            except Exception as exc:  # a broken page must not take the endpoint down
                logger.exception("status page failed")
                self._send(500, f"status page failed: {exc}\n".encode(), "text/plain")
                return
            self._send(200, html.encode(), "text/html; charset=utf-8")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes are not news

    return Handler
