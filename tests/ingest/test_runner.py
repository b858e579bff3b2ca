"""The ingest runner over the in-memory source: validation, dead letters, commit, stop, stats."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from arrive.clock import ManualClock
from arrive.errors import ConfigError, SourceUnavailable
from arrive.ingest.deadletter import DeadLetterRecord, MemoryDeadLetter
from arrive.ingest.runner import IngestRunner
from arrive.ingest.source import MemorySource, MemoryStream
from arrive.schema.codec import encode_event
from arrive.schema.events import AnyEvent, OrderConfirmed
from arrive.testing.source_contract import POISON, START, contract_events


class Applied:
    """An idempotent apply keyed by event id that also remembers each call."""

    def __init__(self) -> None:
        self.by_id: dict[str, AnyEvent] = {}
        self.calls: list[list[str]] = []

    def __call__(self, events: Sequence[AnyEvent]) -> None:
        self.calls.append([e.event_id for e in events])
        self.by_id.update((e.event_id, e) for e in events)


def _stream(events: Sequence[AnyEvent], poison: Sequence[bytes] = ()) -> MemoryStream:
    stream = MemoryStream()
    for event in events:
        stream.append(encode_event(event))
    for payload in poison:
        stream.append(payload)
    return stream


def _runner(
    stream: MemoryStream, apply: Applied, dead: MemoryDeadLetter, clock: ManualClock, **kw: Any
) -> IngestRunner:
    return IngestRunner(MemorySource(stream, finite=True), apply, dead, clock, **kw)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START + timedelta(hours=1))


def test_valid_events_are_applied_in_order_and_every_bad_one_is_dead_lettered(
    clock: ManualClock,
) -> None:
    events = contract_events(20)
    stream = MemoryStream()
    for i, event in enumerate(events):  # poison interleaved with valid events
        stream.append(encode_event(event))
        if i < len(POISON):
            stream.append(POISON[i].payload)
    applied, dead = Applied(), MemoryDeadLetter()
    stats = _runner(stream, applied, dead, clock, batch_size=7).run()
    assert [i for call in applied.calls for i in call] == [e.event_id for e in events]
    assert [(r.field, r.payload) for r in dead.records] == [(p.field, p.payload) for p in POISON]
    for record, poison in zip(dead.records, POISON, strict=True):
        assert poison.reason_contains in record.reason
    assert stream.committed == len(stream.entries)
    assert (stats.events_applied, stats.dead_lettered) == (20, len(POISON))


def test_a_dead_letter_record_says_where_and_when(clock: ManualClock) -> None:
    dead = MemoryDeadLetter()
    _runner(_stream([], [b"{oops"]), Applied(), dead, clock).run()
    (record,) = dead.records
    assert record.position.offset == 0
    assert record.time == clock.now()
    assert record.to_dict()["payload_text"] == "{oops"


def test_events_too_far_in_the_future_are_refused_relative_to_the_clock(
    clock: ManualClock,
) -> None:
    soon = OrderConfirmed(
        event_id="soon", event_time=clock.now() + timedelta(seconds=299), order_id="o"
    )
    late = OrderConfirmed(
        event_id="late", event_time=clock.now() + timedelta(seconds=301), order_id="o"
    )
    applied, dead = Applied(), MemoryDeadLetter()
    _runner(_stream([soon, late]), applied, dead, clock, max_future_s=300.0).run()
    assert list(applied.by_id) == ["soon"]
    assert [(r.field, r.reason) for r in dead.records] == [
        ("event_time", "301 s in the future (limit 300 s)")
    ]


def test_without_a_future_limit_every_time_is_accepted(clock: ManualClock) -> None:
    far = OrderConfirmed(event_id="far", event_time=clock.now() + timedelta(days=400), order_id="o")
    applied = Applied()
    _runner(_stream([far]), applied, MemoryDeadLetter(), clock, max_future_s=None).run()
    assert list(applied.by_id) == ["far"]


def test_a_failing_apply_commits_nothing_and_the_restart_applies_everything(
    clock: ManualClock,
) -> None:
    events = contract_events(30)
    stream = _stream(events)
    applied = Applied()
    calls = 0

    def crash_on_second_batch(batch: Sequence[AnyEvent]) -> None:
        nonlocal calls
        calls += 1
        applied(batch[: len(batch) // 2] if calls == 2 else batch)
        if calls == 2:
            raise RuntimeError("killed mid-batch")

    first = IngestRunner(
        MemorySource(stream), crash_on_second_batch, MemoryDeadLetter(), clock, batch_size=10
    )
    with pytest.raises(RuntimeError, match="mid-batch"):
        first.run()
    assert stream.committed == 10
    _runner(stream, applied, MemoryDeadLetter(), clock, batch_size=10).run()
    assert set(applied.by_id) == {e.event_id for e in events}


def test_a_failing_dead_letter_stops_the_batch_before_apply_and_commit(
    clock: ManualClock,
) -> None:
    class Unreachable(MemoryDeadLetter):
        def write(self, records: Sequence[DeadLetterRecord]) -> None:
            raise SourceUnavailable("dead letter down")

    stream = _stream(contract_events(3), [b"bad"])
    applied = Applied()
    with pytest.raises(SourceUnavailable):
        _runner(stream, applied, Unreachable(), clock).run()
    assert (applied.by_id, stream.committed) == ({}, 0)


def test_stop_finishes_and_commits_the_batch_in_hand(clock: ManualClock) -> None:
    stream = _stream(contract_events(50))
    applied = Applied()
    runner = _runner(stream, applied, MemoryDeadLetter(), clock, batch_size=10)

    def apply_then_stop(batch: Sequence[AnyEvent]) -> None:
        applied(batch)
        runner.stop()

    runner.apply = apply_then_stop
    stats = runner.run()
    assert runner.stopping
    assert (stats.batches, stats.events_applied, stream.committed) == (1, 10, 10)


def test_batches_never_exceed_the_batch_size(clock: ManualClock) -> None:
    applied = Applied()
    _runner(_stream(contract_events(95)), applied, MemoryDeadLetter(), clock, batch_size=20).run()
    assert [len(call) for call in applied.calls] == [20, 20, 20, 20, 15]


def test_stats_report_rate_and_lag_from_the_clock(clock: ManualClock) -> None:
    events = contract_events(40)  # one second apart from START
    stream = _stream(events)
    runner = _runner(stream, Applied(), MemoryDeadLetter(), clock, batch_size=10)
    assert runner.stats().lag_s is None
    for _ in range(4):
        runner.run_once()
        clock.advance(2.0)
    stats = runner.stats()
    assert stats.applied_per_s == pytest.approx(40 / 8.0)
    assert stats.last_event_time == events[-1].event_time
    assert stats.lag_s == pytest.approx((clock.now() - events[-1].event_time).total_seconds())


def test_the_rate_covers_only_the_recent_window(clock: ManualClock) -> None:
    stream = _stream(contract_events(40))
    runner = _runner(stream, Applied(), MemoryDeadLetter(), clock, batch_size=10, rate_window_s=5)
    for _ in range(4):
        runner.run_once()
        clock.advance(2.0)
    assert runner.stats().applied_per_s == pytest.approx(20 / 6.0)


def test_an_empty_poll_changes_nothing(clock: ManualClock) -> None:
    runner = _runner(MemoryStream(), Applied(), MemoryDeadLetter(), clock)
    assert runner.run_once() == 0
    assert runner.stats().batches == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [("batch_size", 0), ("poll_timeout_s", -1.0), ("max_future_s", -5.0)],
)
def test_bad_settings_are_refused(clock: ManualClock, setting: str, value: float) -> None:
    with pytest.raises(ConfigError, match=setting):
        _runner(MemoryStream(), Applied(), MemoryDeadLetter(), clock, **{setting: value})


def test_sigterm_through_a_handler_stops_after_committing_the_batch(clock: ManualClock) -> None:
    stream = _stream(contract_events(50))
    applied = Applied()
    runner = _runner(stream, applied, MemoryDeadLetter(), clock, batch_size=10)

    def apply_then_get_terminated(batch: Sequence[AnyEvent]) -> None:
        applied(batch)
        if len(applied.calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    runner.apply = apply_then_get_terminated
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: runner.stop())
    try:
        stats = runner.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (stats.batches, stream.committed, len(applied.by_id)) == (2, 20, 20)


NOT_UTF8 = (
    b'{"type":"order_confirmed","event_id":"p5\xff\xfe","event_time":"2025-03-03T00:00:00Z",'
    b'"order_id":"p5"}'
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.sampled_from([encode_event(e) for e in contract_events(5)]),
            st.sampled_from([*(p.payload for p in POISON), NOT_UTF8, b""]),
        ),
        max_size=12,
    )
)
@example([NOT_UTF8, encode_event(contract_events(1)[0])])
def test_any_payloads_are_applied_or_dead_lettered_once_and_all_committed(
    payloads: list[bytes],
) -> None:
    clock = ManualClock(START + timedelta(hours=1))
    stream = _stream([], payloads)
    applied, dead = Applied(), MemoryDeadLetter()
    stats = _runner(stream, applied, dead, clock, batch_size=4).run()
    assert stats.events_applied + stats.dead_lettered == len(payloads)
    assert len(dead.records) == stats.dead_lettered
    assert sorted(int(r.position.offset) for r in dead.records) == sorted(
        {int(r.position.offset) for r in dead.records}
    )
    assert stream.committed == len(payloads)


def test_a_decoder_bug_costs_one_dead_letter_not_the_stream(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the codec ever raise something other than SchemaError, the message is
    dead-lettered with the error and the batch is still applied and committed."""
    import arrive.ingest.runner as runner_module

    events = contract_events(3)
    decode = runner_module.decode_event

    def buggy(payload: bytes | str) -> AnyEvent:
        if payload == b"trigger":
            raise RuntimeError("decoder bug")
        return decode(payload)

    monkeypatch.setattr(runner_module, "decode_event", buggy)
    stream = _stream(events[:2], [b"trigger"])
    stream.append(encode_event(events[2]))
    applied, dead = Applied(), MemoryDeadLetter()
    _runner(stream, applied, dead, clock).run()
    assert sorted(applied.by_id) == [e.event_id for e in events]
    ((record,),) = [dead.records]
    assert (record.field, record.payload) == ("$", b"trigger")
    assert "RuntimeError: decoder bug" in record.reason
    assert stream.committed == 4


def test_run_calls_after_poll_after_every_poll_but_the_last_and_it_may_stop_the_runner(
    clock: ManualClock,
) -> None:
    applied = Applied()
    runner = _runner(_stream(contract_events(5)), applied, MemoryDeadLetter(), clock, batch_size=2)
    seen: list[int] = []
    runner.run(after_poll=lambda: seen.append(runner.stats().events_applied))
    assert seen == [2, 4, 5]
    stopped = _runner(
        _stream(contract_events(5)), Applied(), MemoryDeadLetter(), clock, batch_size=2
    )
    assert stopped.run(after_poll=stopped.stop).events_applied == 2
