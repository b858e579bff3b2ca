"""Replay the latest days of a data directory as live traffic through the service.

Events flow in event time through the ingest engine into an in-process online
store; at each order's creation time the replay moves the service's clock there,
asks the ETA service (over HTTP, on loopback) for the order's P50/P90 and records
the answer and its round-trip time. :mod:`arrive.monitoring.outcome` joins the answers
to the deliveries.
"""

from __future__ import annotations

import http.client
import math
import socket
import time
from collections.abc import Callable, Sequence
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
from arrive.demo.inject import BROKEN_FEATURE, FaultyStore, Injection
from arrive.demo.server import LoopbackServer
from arrive.errors import DataError, InternalError
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.replay import LogReplay, replay_order
from arrive.monitoring.outcome import ANSWER_SCHEMA
from arrive.schema.eta import to_request
from arrive.schema.events import OrderCreated
from arrive.schema.frame import frame_to_events
from arrive.serving.settings import ServeSettings
from arrive.store.memory import InMemoryStore

Progress = Callable[[int, int], None]
STORE_UP: Final = "arrive_store_up"
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
    injections: Sequence[Injection] = (),
    vendor: providers.Vendor | None = None,
    travel: providers.ProviderTimeline | None = None,
) -> pl.DataFrame:
    """Replay ``plan`` through an in-process store and the ETA service of ``settings``
    (its store setting is ignored: the replay's in-process store is used).

    Each of ``injections`` is on during its stretch (:mod:`arrive.demo.inject`): the
    service's store fails or serves a broken feature (:class:`FaultyStore`), or ingest
    stops applying events and catches up after. After each answer the replay records the
    alert metric of the store outage (``arrive_store_up``, scraped from the service) and
    of the stale ingest (its watermark lag) into the injection's ``samples``; the
    broken feature's is measured afterwards from the prediction log
    (:func:`arrive.demo.skew.replay_skew`).
    With ``vendor`` (the simulated vendor ``settings.providers`` names), its clock follows
    the replay and ``travel`` records each answer's ``travel_source`` and the breaker's
    state (:func:`arrive.demo.providers.step` takes it down during ``travel.outage``).

    Returns:
        One row per order (:data:`arrive.monitoring.outcome.ANSWER_SCHEMA`).
    """
    from arrive.serving.http.app import create_app
    from arrive.serving.wiring import build_predictor

    store = InMemoryStore()
    engine = OnlineEngine(store, local_timezone=plan.timezone)
    served = FaultyStore(store)
    clock = ManualClock(plan.orders[0].event_time)
    app = create_app(
        settings,
        clock=clock,
        build=lambda s: build_predictor(s, store=served if injections else store, clock=clock),
    )
    replay = LogReplay(plan.log, engine)
    orders = sorted(plan.orders, key=lambda e: (e.event_time, e.order_id))
    rows: list[dict[str, Any]] = []
    with LoopbackServer(app) as server:
        client = _Client(server.port)
        try:
            for done, order in enumerate(orders, 1):
                moment = order.event_time
                clock.set(moment)
                on = {i.fault.name for i in injections if i.covers(moment)}
                if "stale-ingest" not in on:
                    replay.apply_before(moment)
                if injections:
                    _break(served, on, client)
                if vendor is not None and travel is not None:
                    providers.step(vendor, travel, moment)
                row = client.eta(order)
                source = row.pop("travel_source")
                rows.append(row)
                _measure(injections, moment, client, engine)
                if travel is not None:
                    state = client.metric("arrive_provider_breaker_state", providers.VENDOR)
                    travel.samples.append((moment, source, state))
                if on_progress is not None:
                    on_progress(done, len(orders))
        finally:
            client.close()
    return pl.DataFrame(rows, schema=ANSWER_SCHEMA)


def _break(store: FaultyStore, on: set[str], client: _Client) -> None:
    """Set the store's faults; after an outage, wait (bounded) until the service's
    background ping has found the store back, as a real service would before answering."""
    down = "store-outage" in on
    if store.down and not down:
        store.down = False
        deadline = time.monotonic() + RECOVERY_S
        while client.metric(STORE_UP) != 1.0:
            if time.monotonic() > deadline:
                raise InternalError(f"the service did not see the store back in {RECOVERY_S} s")
            time.sleep(0.01)
    store.down = down
    store.broken = BROKEN_FEATURE if "broken-feature" in on else None


def _measure(
    injections: Sequence[Injection], moment: datetime, client: _Client, engine: OnlineEngine
) -> None:
    for injection in injections:
        if injection.fault.name == "store-outage":
            injection.record(moment, {"": client.metric(STORE_UP)})
        elif injection.fault.name == "stale-ingest":
            mark = engine.watermark_us
            lag = math.nan if mark is None else moment.timestamp() - mark / 1e6
            injection.record(moment, {"": lag})


def client_for(port: int) -> _Client:
    """A keep-alive client of the service on loopback ``port``."""
    return _Client(port)


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

    def eta(self, order: OrderCreated, *, detail: bool = False) -> dict[str, Any]:
        """The answer to ``order`` as a row of :data:`ANSWER_SCHEMA` plus its
        ``travel_source``; with ``detail``, its ``variant`` and ``rollout`` too."""
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
        row = {
            "order_id": order.order_id,
            "created_at": order.event_time,
            "p50_s": answer["p50_s"],
            "p90_s": answer["p90_s"],
            "fallback": answer["fallback"],
            "model_version": answer["model_version"],
            "latency_ms": latency_ms,
            "travel_source": answer.get("travel_source", "builtin"),
        }
        if detail:
            row |= {"variant": answer["variant"], "rollout": answer.get("rollout")}
        return row

    def reconnect(self) -> None:
        """Open a fresh connection at the next request (after a wait longer than the
        server's keep-alive)."""
        self._conn.close()

    def ping(self) -> None:
        """One round trip (``/healthz``): what the service's event loop was doing when
        it was sent has finished."""
        self._conn.request("GET", "/healthz")
        self._conn.getresponse().read()

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
