"""A live stream through the runner: a trickle is applied at once (a batch is never held
back to fill up), and when nothing arrives the engine's watermark follows the clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from arrive.clock import ManualClock
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.reader import OnlineFeatures
from arrive.ingest.deadletter import MemoryDeadLetter
from arrive.ingest.pipeline import PipelineSettings, build_pipeline
from arrive.ingest.runner import IngestRunner
from arrive.ingest.source import MemorySource, MemoryStream, Position, RawMessage
from arrive.schema.codec import encode_event
from arrive.schema.events import AnyEvent, OrderCreated
from arrive.store.base import to_epoch_us
from arrive.store.memory import InMemoryStore
from arrive.testing.source_contract import START, contract_events


class FillingSource:
    """A source that behaves like Kafka's ``consume``: a poll returns once it holds
    ``max_events`` messages or its timeout has passed (on the injected clock).

    Args:
        clock: moved forward while a poll waits.
        arrivals: (monotonic time the message reaches the source, payload).
    """

    def __init__(self, clock: ManualClock, arrivals: Sequence[tuple[float, bytes]]) -> None:
        self.clock = clock
        self.arrivals = list(arrivals)
        self.next = 0

    def poll(self, max_events: int, timeout_s: float) -> list[RawMessage]:
        deadline = self.clock.monotonic() + timeout_s
        full_at = self.next + max_events - 1
        ready = self.arrivals[full_at][0] if full_at < len(self.arrivals) else deadline
        self.clock.sleep_until(min(ready, deadline))
        batch = []
        now = self.clock.monotonic()
        while len(batch) < max_events and self.next < len(self.arrivals):
            arrived, payload = self.arrivals[self.next]
            if arrived > now:
                break
            batch.append(RawMessage(payload, Position("filling", 0, self.next)))
            self.next += 1
        return batch

    def commit(self, positions: Sequence[Position]) -> None:
        """Nothing to acknowledge."""

    @property
    def exhausted(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to release."""


def test_a_trickle_is_applied_as_it_arrives_even_from_a_source_that_fills_batches() -> None:
    clock = ManualClock(START + timedelta(hours=1))
    events = contract_events(60)
    arrivals = [(0.5 + 0.01 * i, encode_event(e)) for i, e in enumerate(events)]  # 100/s
    applied_at: dict[str, float] = {}

    def apply(batch: Sequence[AnyEvent]) -> None:
        applied_at.update((e.event_id, clock.monotonic()) for e in batch)

    source = FillingSource(clock, arrivals)
    runner = IngestRunner(source, apply, MemoryDeadLetter(), clock, batch_size=500)
    while len(applied_at) < len(events) and clock.monotonic() < 10.0:
        runner.run_once()
    delays = [applied_at[e.event_id] - t for (t, _), e in zip(arrivals, events, strict=True)]
    assert len(delays) == len(events)
    assert max(delays) == 0.0  # none waited for a batch of 500 that never fills


def _order(order_id: str, seconds: float) -> OrderCreated:
    return OrderCreated(
        event_id=f"c-{order_id}",
        event_time=START + timedelta(seconds=seconds),
        order_id=order_id,
        store_id="s1",
    )


def _live(
    clock: ManualClock, stream: MemoryStream, *, idle: bool
) -> tuple[IngestRunner, OnlineEngine]:
    settings = PipelineSettings(lateness_s=60.0, follow_clock=idle)
    pipeline = build_pipeline(
        MemorySource(stream), InMemoryStore(), MemoryDeadLetter(), clock, settings
    )
    return pipeline.runner, pipeline.engine


def test_an_idle_live_stream_expires_windows_and_keeps_the_pipeline_fresh() -> None:
    clock = ManualClock(START + timedelta(seconds=1))
    stream = MemoryStream()
    runner, engine = _live(clock, stream, idle=True)
    still, _ = _live(clock, stream, idle=False)
    runner.run_once()
    assert engine.watermark_us is None  # nothing seen yet: nothing to advance
    stream.append(encode_event(_order("o1", 0)))
    assert runner.run_once() == 1
    assert still.run_once() == 1
    reader = OnlineFeatures(["store_orders_15m", "store_orders_1h"], {}, max_lag_s=300.0)

    def read(target: IngestRunner) -> tuple[dict[str, object], tuple[str, ...]]:
        store = target.apply.engine.store  # type: ignore[attr-defined]
        features = reader.read(store, [_order("q", 0)], clock.now())[0]
        return features.values, features.stale

    assert read(runner) == ({"store_orders_15m": 1.0, "store_orders_1h": 1.0}, ())
    clock.advance(20 * 60)
    assert runner.run_once() == 0
    assert still.run_once() == 0
    now_us = to_epoch_us(clock.now())
    assert engine.watermark_us == now_us - 60 * 1_000_000  # the lateness behind the clock
    assert read(runner) == ({"store_orders_15m": 0.0, "store_orders_1h": 1.0}, ())
    stale = ("store_orders_15m", "store_orders_1h")
    assert read(still) == ({"store_orders_15m": None, "store_orders_1h": None}, stale)
    stream.append(encode_event(_order("o2", 20 * 60 - 30)))  # 30 s old: within the lateness
    assert runner.run_once() == 1
    assert engine.counts.late == 0
    assert read(runner) == ({"store_orders_15m": 1.0, "store_orders_1h": 2.0}, ())


def test_idle_never_moves_the_watermark_back() -> None:
    engine = OnlineEngine(InMemoryStore(), lateness_s=60.0)
    engine.apply([_order("o1", 3600)])
    assert not engine.idle(START + timedelta(seconds=3600 + 30))
    assert engine.watermark_us == to_epoch_us(START + timedelta(seconds=3600))
    assert engine.idle(START + timedelta(seconds=3600 + 90))
    assert engine.watermark_us == to_epoch_us(START + timedelta(seconds=3600 + 30))
