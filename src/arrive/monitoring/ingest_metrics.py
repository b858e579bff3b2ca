"""The metrics of ``arrive ingest``, on its own ``/metrics`` port (``--metrics-port``).

Read from the runner and its engine at each scrape (nothing is added to the ingest loop),
into a registry of their own (the service's metrics are not the ingest process's):

* ``arrive_ingest_events_total{outcome}`` — ``applied`` (changed the online state),
  ``duplicate`` (an order created twice: changed nothing) or ``dead_lettered``; the
  rate of ``applied`` is the events per second.
* ``arrive_ingest_dead_letters_total{reason}`` — ``invalid`` (could not be decoded or
  validated, or far in the future) or ``late`` (behind the watermark by more than the
  allowed lateness).
* ``arrive_ingest_lag_seconds`` — now minus the event time of the last applied event (the
  watermark lag); absent before the first event. For a replay of past events it is the
  age of the history, not a delay.
* ``arrive_ingest_last_checkpoint_timestamp_seconds`` — unix time of the last save and
  commit; absent before the first.

Counters never go back: a scrape in the middle of a batch may see its duplicates before
its applied events; the value shown then stays at the previous one until the batch ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from arrive.clock import Clock
from arrive.features.online.engine import EngineCounts
from arrive.ingest.runner import IngestRunner


class Counted(Protocol):
    """What the metrics read of an engine: an :class:`OnlineEngine`, or the owner
    engines of partitioned ingest together
    (:class:`~arrive.ingest.partitioned.Owners`)."""

    @property
    def counts(self) -> EngineCounts: ...


class IngestMetrics(Collector):
    """The ingest metrics of ``runner`` applying events to ``engine`` (see the module
    docstring); ``clock`` gives "now" for the lag."""

    def __init__(self, runner: IngestRunner, engine: Counted, clock: Clock) -> None:
        self.runner = runner
        self.engine = engine
        self.clock = clock
        self._shown: dict[str, float] = {}
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        progress = self.runner.progress()
        counts = self.engine.counts
        late, duplicates = counts.late, counts.duplicates
        found = {
            "applied": counts.applied - duplicates,
            "duplicate": duplicates,
            "dead_lettered": progress.dead_lettered + late,
            "invalid": progress.dead_lettered,
            "late": late,
        }
        shown = self._monotonic(found)
        events = CounterMetricFamily(
            "arrive_ingest_events",
            "Events by outcome (applied, duplicate, dead_lettered)",
            labels=["outcome"],
        )
        for outcome in ("applied", "duplicate", "dead_lettered"):
            events.add_metric([outcome], shown[outcome])
        dead = CounterMetricFamily(
            "arrive_ingest_dead_letters",
            "Dead-lettered events by reason (invalid, late)",
            labels=["reason"],
        )
        for reason in ("invalid", "late"):
            dead.add_metric([reason], shown[reason])
        return [events, dead, *self._times(progress.last_event_time, progress.committed_at)]

    def _monotonic(self, found: dict[str, int]) -> dict[str, float]:
        with self._lock:
            for name, value in found.items():
                self._shown[name] = max(self._shown.get(name, 0.0), float(value))
            return dict(self._shown)

    def _times(self, last_event: datetime | None, committed: datetime | None) -> list[Metric]:
        out: list[Metric] = []
        if last_event is not None:
            lag = GaugeMetricFamily(
                "arrive_ingest_lag_seconds",
                "Now minus the event time of the last applied event",
            )
            lag.add_metric([], (self.clock.now() - last_event).total_seconds())
            out.append(lag)
        if committed is not None:
            saved = GaugeMetricFamily(
                "arrive_ingest_last_checkpoint_timestamp_seconds",
                "Unix time of the last checkpoint (save and commit)",
            )
            saved.add_metric([], committed.timestamp())
            out.append(saved)
        return out


def serve_metrics(
    collector: Collector, port: int, host: str = "127.0.0.1"
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``collector`` alone on ``http://host:port/metrics`` in a daemon thread; stop
    it with ``server.shutdown()``.

    Raises:
        OSError: the port cannot be bound.
    """
    registry = CollectorRegistry()
    registry.register(collector)
    return start_http_server(port, addr=host, registry=registry)
