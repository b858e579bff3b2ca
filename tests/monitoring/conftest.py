"""Builders of hand-made prediction logs and outcome streams for the monitor's tests."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from arrive.clock import ManualClock
from arrive.ingest.source import MemorySource, MemoryStream
from arrive.monitoring.join import JoinSettings
from arrive.monitoring.monitor import Monitor, MonitorSettings
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.schema.codec import encode_event
from arrive.schema.events import Cancelled, Delivered, Event, OrderCreated

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Served:
    """One logged answer (times in seconds after :data:`T0`)."""

    order_id: str
    at_s: float
    p50_s: float
    p90_s: float
    version: str | None = "v1"
    variant: str = "production"
    fallback: str | None = None
    history: int | None = 50


def write_log(directory: Path, answers: Sequence[Served], opened_s: float = 0.0) -> Path:
    """One published log file holding ``answers``, written by the service's own writer."""
    clock = ManualClock(T0 + timedelta(seconds=opened_s))
    log = PredictionLog(directory, clock)
    for answer in answers:
        features = None if answer.history is None else {"store_delivery_count_28d": answer.history}
        log.extend(
            Predictions(
                [f"r-{answer.order_id}-{answer.at_s}"],
                [answer.order_id],
                T0 + timedelta(seconds=answer.at_s),
                [answer.variant],
                [answer.version],
                [features],
                [answer.p50_s],
                [answer.p90_s],
                [answer.fallback],
            )
        )
        log.flush()
    log.close()
    return log.files()[-1]


def created(order_id: str, at_s: float, market: str = "m1", category: str = "pizza") -> Event:
    return OrderCreated(
        event_id=f"c-{order_id}",
        event_time=T0 + timedelta(seconds=at_s),
        order_id=order_id,
        store_id="s1",
        market_id=market,
        store_category=category,
    )


def delivered(order_id: str, at_s: float, event_id: str | None = None) -> Event:
    return Delivered(
        event_id=event_id or f"d-{order_id}",
        event_time=T0 + timedelta(seconds=at_s),
        order_id=order_id,
    )


def cancelled(order_id: str, at_s: float) -> Event:
    return Cancelled(
        event_id=f"x-{order_id}",
        event_time=T0 + timedelta(seconds=at_s),
        order_id=order_id,
        reason="customer",
    )


def stream_of(events: Iterable[Event]) -> MemoryStream:
    stream = MemoryStream("outcomes")
    for event in sorted(events, key=lambda e: (e.event_time, e.event_id)):
        stream.append(encode_event(event))
    return stream


def run_to_end(monitor: Monitor, *, limit: int = 10_000) -> None:
    """Step until both inputs are used up, then close every window."""
    for _ in range(limit):
        if not monitor.step() and monitor.source.exhausted and not monitor.backlog():
            monitor.finish()
            return
    raise AssertionError("the monitor did not finish")


MonitorFactory = Callable[..., Monitor]


@pytest.fixture
def make_monitor(tmp_path: Path) -> MonitorFactory:
    """``make_monitor(stream, horizon_s=..., window_s=..., **settings)``: a monitor over
    ``tmp_path/log`` and a finite source on ``stream``, resumed from its checkpoint."""

    def make(
        stream: MemoryStream, *, horizon_s: float = 3600.0, window_s: float = 300.0, **kw: object
    ) -> Monitor:
        settings = MonitorSettings(
            log_dir=tmp_path / "log",
            out_dir=tmp_path / "quality",
            checkpoint=tmp_path / "checkpoint.msgpack",
            join=JoinSettings(horizon_s=horizon_s, window_s=window_s),
            **kw,  # type: ignore[arg-type]
        )
        monitor = Monitor(settings, MemorySource(stream, finite=True), ManualClock(T0))
        monitor.resume()
        return monitor

    return make


@pytest.fixture
def kit() -> ModuleType:
    """These builders (:class:`Served`, :func:`write_log`, :func:`created`, ...): test
    modules cannot import a conftest under ``--import-mode=importlib``."""
    return sys.modules[__name__]
