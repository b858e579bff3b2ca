"""Builders of hand-made prediction logs and outcome streams for the monitor's tests."""

from __future__ import annotations

import random
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
from arrive.monitoring.monitor import Baseline, Monitor, MonitorSettings
from arrive.monitoring.monitor_drift import WindowDrift
from arrive.monitoring.monitor_skew import SkewCheck
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


def random_day(
    seed: int, orders: int, hours: float, files: int
) -> tuple[list[list[Served]], list[Event]]:
    """Answers (split into ``files`` log files by time) and their events: most orders
    delivered within the hour, some cancelled, some never resolved, a few delivered twice."""
    rng = random.Random(seed)
    answers, events = [], []
    for index in range(orders):
        order, at_s = f"o{index:05d}", rng.uniform(0, hours * 3600)
        p50 = rng.uniform(900, 2400)
        fallback = rng.random() < 0.1
        answers.append(
            Served(
                order,
                at_s,
                p50,
                p50 * 1.5,
                None if fallback else "v1",
                "heuristic" if fallback else "production",
                "deadline" if fallback else None,
                rng.choice([None, 0, 5, 50, 500]),
            )
        )
        events.append(created(order, at_s, rng.choice(["m1", "m2"]), rng.choice(["a", "b"])))
        fate = rng.random()
        if fate < 0.85:
            events.append(delivered(order, at_s + rng.uniform(300, 3000)))
            if fate < 0.03:
                events.append(delivered(order, at_s + 3100, f"again-{order}"))
        elif fate < 0.92:
            events.append(cancelled(order, at_s + rng.uniform(60, 600)))
    events += [delivered(f"ghost{i}", rng.uniform(0, hours * 3600)) for i in range(20)]
    answers.sort(key=lambda a: a.at_s)
    size = -(-len(answers) // files)
    return [answers[i : i + size] for i in range(0, len(answers), size)], events


def write_logs(directory: Path, parts: Sequence[Sequence[Served]]) -> None:
    for part in parts:
        write_log(directory, part, opened_s=part[0].at_s)


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
    """``make_monitor(stream, horizon_s=..., window_s=..., run=..., **settings)``: a monitor
    over ``tmp_path/log`` and a finite source on ``stream``, resumed from its checkpoint
    (``tmp_path/run``, where its quality files go too)."""

    def make(
        stream: MemoryStream,
        *,
        horizon_s: float = 3600.0,
        window_s: float = 300.0,
        run: str = "",
        baseline: Baseline | None = None,
        drift: WindowDrift | None = None,
        skew: SkewCheck | None = None,
        **kw: object,
    ) -> Monitor:
        settings = MonitorSettings(
            log_dir=tmp_path / "log",
            out_dir=tmp_path / run / "quality",
            checkpoint=tmp_path / run / "checkpoint.msgpack",
            join=JoinSettings(horizon_s=horizon_s, window_s=window_s),
            **kw,  # type: ignore[arg-type]
        )
        source = MemorySource(stream, finite=True)
        clock = skew.clock if skew is not None else ManualClock(T0)
        monitor = Monitor(settings, source, clock, baseline=baseline, drift=drift, skew=skew)
        monitor.resume()
        return monitor

    return make


@pytest.fixture
def kit() -> ModuleType:
    """These builders (:class:`Served`, :func:`write_log`, :func:`created`, ...): test
    modules cannot import a conftest under ``--import-mode=importlib``."""
    return sys.modules[__name__]
