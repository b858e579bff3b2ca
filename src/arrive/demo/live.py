"""Replay the latest days of a data directory as live traffic through the service.

Events flow in event time through the ingest engine into an in-process online
store; at each order's creation time the replay moves the service's clock there,
asks the ETA service (over HTTP, on loopback) for the order's P50/P90 and records
the answer and its round-trip time. :mod:`arrive.monitoring.outcome` joins the answers
to the deliveries.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import polars as pl
from prometheus_client.parser import text_string_to_metric_families

from arrive import datadir
from arrive.clock import ManualClock
from arrive.datadir import local_timezone
from arrive.demo import providers
from arrive.demo.outage import Outage, OutageStore
from arrive.demo.server import LoopbackServer
from arrive.errors import DataError, InternalError
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.replay import replay_order, replay_until
from arrive.monitoring.outcome import ANSWER_SCHEMA
from arrive.schema.eta import to_request
from arrive.schema.events import OrderCreated
from arrive.schema.frame import frame_to_events
from arrive.serving.settings import ServeSettings
from arrive.store.memory import InMemoryStore

Progress = Callable[[int, int], None]
RECOVERY_S: Final = 10.0
"""How long (wall time) the service may take to see the store back after an outage."""


@dataclass(frozen=True)
class LivePlan:
    """What a live replay sends: the event log up to the last order, and the orders."""

    log: pl.DataFrame
    orders: list[OrderCreated]
    timezone: str


def plan_live(data_dir: Path, start: datetime, limit: int | None = None) -> LivePlan:
    """The orders created at or after ``start`` (the latest ``limit`` of them when
    given) and every event up to the last one's creation.

    Raises:
        DataError: no order was created at or after ``start``.
    """
    log = replay_order(datadir.scan_events(data_dir)).collect()
    created = log.filter((pl.col("type") == "order_created") & (pl.col("event_time") >= start))
    if limit is not None:
        created = created.tail(limit)
    if created.is_empty():
        raise DataError(f"live replay: no order was created at or after {start.isoformat()}")
    last = created.get_column("event_time").max()
    orders = [e for e in frame_to_events(created) if isinstance(e, OrderCreated)]
    return LivePlan(log.filter(pl.col("event_time") <= last), orders, local_timezone(data_dir))


def run_live(
    plan: LivePlan,
    settings: ServeSettings,
    *,
    on_progress: Progress | None = None,
    outage: Outage | None = None,
    vendor: providers.Vendor | None = None,
    travel: providers.ProviderTimeline | None = None,
) -> pl.DataFrame:
    """Replay ``plan`` through an in-process store and the ETA service of ``settings``
    (its store setting is ignored: the replay's in-process store is used).

    With ``outage``, the service's store fails during its stretch
    (:class:`arrive.demo.outage.OutageStore`) and the service's ``arrive_store_up`` is
    scraped after each answer into ``outage.samples``. With ``vendor`` (the simulated
    vendor ``settings.providers`` names), its clock follows the replay and ``travel``
    records each answer's ``travel_source`` and the breaker's state
    (:func:`arrive.demo.providers.step` takes it down during ``travel.outage``).

    Returns:
        One row per order (:data:`arrive.monitoring.outcome.ANSWER_SCHEMA`).
    """
    from arrive.serving.http.app import create_app
    from arrive.serving.wiring import build_predictor

    store = InMemoryStore()
    engine = OnlineEngine(store, local_timezone=plan.timezone)
    served = OutageStore(store)
    clock = ManualClock(plan.orders[0].event_time)
    app = create_app(
        settings,
        clock=clock,
        build=lambda s: build_predictor(s, store=store if outage is None else served, clock=clock),
    )
    rows: list[dict[str, Any]] = []
    with LoopbackServer(app) as server:
        client = _Client(server.port)
        try:
            for done, order in enumerate(replay_until(plan.log, plan.orders, engine), 1):
                clock.set(order.event_time)
                if outage is not None:
                    _toggle(served, outage, order.event_time, client)
                if vendor is not None and travel is not None:
                    providers.step(vendor, travel, order.event_time)
                row = client.eta(order)
                source = row.pop("travel_source")
                rows.append(row)
                if outage is not None:
                    outage.samples.append((order.event_time, client.store_up()))
                if travel is not None:
                    state = client.metric("arrive_provider_breaker_state", providers.VENDOR)
                    travel.samples.append((order.event_time, source, state))
                if on_progress is not None:
                    on_progress(done, len(plan.orders))
        finally:
            client.close()
    return pl.DataFrame(rows, schema=ANSWER_SCHEMA)


def _toggle(store: OutageStore, outage: Outage, moment: datetime, client: _Client) -> None:
    """Take the store down inside the outage; after it, wait (bounded) until the service's
    background ping has found it back, as a real service would before answering again."""
    down = outage.covers(moment)
    if store.down and not down:
        store.down = False
        deadline = time.monotonic() + RECOVERY_S
        while client.store_up() != 1.0:
            if time.monotonic() > deadline:
                raise InternalError(f"the service did not see the store back in {RECOVERY_S} s")
            time.sleep(0.01)
    store.down = down


class _NoDelayConnection(http.client.HTTPConnection):
    """Sends each request at once: without TCP_NODELAY, Nagle's algorithm holds the body
    back until the headers are acknowledged, and delayed ACKs make that ~40 ms."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Client:
    """One keep-alive HTTP connection to the service."""

    def __init__(self, port: int) -> None:
        self._conn = _NoDelayConnection("127.0.0.1", port, timeout=30)

    def eta(self, order: OrderCreated) -> dict[str, Any]:
        body = msgspec.json.encode(to_request(order))
        started = time.perf_counter()
        self._conn.request("POST", "/v1/eta", body, {"Content-Type": "application/json"})
        response = self._conn.getresponse()
        payload = response.read()
        latency_ms = (time.perf_counter() - started) * 1e3
        if response.status != 200:
            raise InternalError(
                f"the ETA service answered {response.status} for order {order.order_id}: "
                f"{payload[:300]!r}"
            )
        answer = msgspec.json.decode(payload)
        return {
            "order_id": order.order_id,
            "created_at": order.event_time,
            "p50_s": answer["p50_s"],
            "p90_s": answer["p90_s"],
            "fallback": answer["fallback"],
            "model_version": answer["model_version"],
            "latency_ms": latency_ms,
            "travel_source": answer.get("travel_source", "builtin"),
        }

    def store_up(self) -> float:
        """The service's ``arrive_store_up`` from its ``/metrics`` (NaN when absent)."""
        return self.metric("arrive_store_up")

    def metric(self, name: str, provider: str | None = None) -> float:
        """The least sample of gauge ``name`` (of ``provider`` when given) on the service's
        ``/metrics``; NaN when absent."""
        self._conn.request("GET", "/metrics")
        text = self._conn.getresponse().read().decode()
        for family in text_string_to_metric_families(text):
            if family.name == name:
                values = [
                    s.value
                    for s in family.samples
                    if provider is None or s.labels.get("provider") == provider
                ]
                return min(values, default=float("nan"))
        return float("nan")

    def close(self) -> None:
        self._conn.close()
