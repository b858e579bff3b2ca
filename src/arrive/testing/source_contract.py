"""Conformance suite for :class:`~arrive.ingest.source.EventSource` backends.

Every backend passes it unchanged: per-key order, commit-then-restart resumes after
the committed position, and uncommitted messages come again after a restart (at
least once). Provide a ``source_backend`` fixture returning a fresh
:class:`SourceBackend` per test and subclass :class:`SourceContract`::

    import pytest
    from arrive.testing.source_contract import MemoryBackend, SourceContract

    @pytest.fixture
    def source_backend():
        return MemoryBackend()

    class TestSourceContract(SourceContract):
        pass

Also here, for tests of the runner over any backend: :func:`contract_events`,
:data:`POISON` (malformed messages with the field and reason each must be
dead-lettered with), :func:`drain` and :func:`run_until`.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol

import pytest

from arrive.datadir import write_events
from arrive.ingest.files import FileReplaySource
from arrive.ingest.runner import IngestRunner
from arrive.ingest.source import EventSource, MemorySource, MemoryStream, RawMessage, entity_key
from arrive.schema.codec import decode_event, encode_event
from arrive.schema.events import AnyEvent, CourierPing, OrderConfirmed
from arrive.schema.frame import events_to_frame

START: Final = datetime(2025, 3, 3, tzinfo=UTC)
#: librdkafka settings that make a test consumer fetch promptly.
FAST_FETCH_CONFIG: Final[dict[str, str | int | float | bool]] = {"fetch.wait.max.ms": 50}


@dataclass(frozen=True)
class Poison:
    """A malformed message and what its dead-letter record must say."""

    payload: bytes
    field: str
    reason_contains: str


#: One of each kind of bad message; times are absolute, so "far future" holds for any
#: clock before 2100.
POISON: Final[tuple[Poison, ...]] = (
    Poison(b'{"type": "order_confirmed", "event_id": ', "$", "not valid JSON"),
    Poison(b"\xff\xfe\x00garbage", "$", "not valid JSON"),
    Poison(
        b'{"type": "teleported", "event_id": "bad-1", "event_time": "2025-03-03T00:00:00Z"}',
        "type",
        "unknown event type",
    ),
    Poison(
        b'{"type": "order_confirmed", "event_id": "bad-2", "event_time": "2025-03-03T00:00:00Z"}',
        "order_id",
        "required field is missing",
    ),
    Poison(
        b'{"type": "courier_ping", "event_id": "bad-3", "event_time": "2025-03-03T00:00:00Z",'
        b' "courier_id": "c1", "lat": "north", "lon": 13.4, "status": "idle"}',
        "lat",
        "Expected `float`",
    ),
    Poison(
        b'{"type": "order_confirmed", "event_id": "bad-4", "event_time": "2100-01-01T00:00:00Z",'
        b' "order_id": "o1"}',
        "event_time",
        "in the future",
    ),
)


def contract_events(n: int, keys: int = 5) -> list[AnyEvent]:
    """``n`` valid events one second apart over ``keys`` orders and ``keys`` couriers."""
    events: list[AnyEvent] = []
    for i in range(n):
        when = START + timedelta(seconds=i)
        if i % 3 == 2:
            events.append(_ping(i, when, keys))
        else:
            events.append(
                OrderConfirmed(event_id=f"e{i:05d}", event_time=when, order_id=f"o{i % keys}")
            )
    return events


def mixed_messages(n: int) -> tuple[list[AnyEvent], list[tuple[bytes | None, bytes]]]:
    """``n`` valid events and, interleaved with them, every :data:`POISON` message:
    the events and the ``(key, payload)`` messages to publish, in order."""
    events = contract_events(n)
    step = max(n // (len(POISON) + 1), 1)
    messages: list[tuple[bytes | None, bytes]] = []
    for i, event in enumerate(events):
        messages.append((entity_key(event).encode(), encode_event(event)))
        if i % step == step - 1 and i // step < len(POISON):
            messages.append((b"poison", POISON[i // step].payload))
    return events, messages


def _ping(i: int, when: datetime, keys: int) -> CourierPing:
    return CourierPing(
        event_id=f"e{i:05d}",
        event_time=when,
        courier_id=f"c{i % keys}",
        lat=52.5,
        lon=13.4,
        status="idle",
    )


def drain(
    source: EventSource, n: int, *, timeout_s: float = 0.5, max_empty: int = 40
) -> list[RawMessage]:
    """Poll until ``n`` messages arrived (never more: each poll asks for the rest).

    Raises:
        AssertionError: ``max_empty`` polls in a row brought nothing.
    """
    got: list[RawMessage] = []
    empty = 0
    while len(got) < n:
        batch = source.poll(n - len(got), timeout_s)
        empty = 0 if batch else empty + 1
        if empty >= max_empty:
            raise AssertionError(f"only {len(got)} of {n} messages arrived")
        got.extend(batch)
    return got


def run_until(runner: IngestRunner, done: Callable[[], bool], *, max_empty: int = 40) -> None:
    """Run ``runner`` batch by batch until ``done()`` holds.

    Raises:
        AssertionError: ``max_empty`` polls in a row brought nothing.
    """
    empty = 0
    while not done():
        empty = 0 if runner.run_once() else empty + 1
        if empty >= max_empty:
            raise AssertionError(f"stuck after {runner.stats().messages} messages")


def event_ids(messages: Sequence[RawMessage]) -> list[str]:
    """The event ids of valid messages, in delivery order."""
    return [decode_event(m.payload).event_id for m in messages]


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class SourceBackend(Protocol):
    """One backend under test, over storage of its own.

    To implement, provide ``publish(events)`` (called before the first ``open``) and
    ``open()``, which returns a new consumer with the same identity each time (group,
    consumer name, checkpoint), as a restarted process would have.
    """

    def publish(self, events: Sequence[AnyEvent]) -> None: ...

    def open(self) -> EventSource: ...


class MemoryBackend:
    """:class:`~arrive.ingest.source.MemorySource` over one shared stream."""

    def __init__(self) -> None:
        self.stream = MemoryStream()

    def publish(self, events: Sequence[AnyEvent]) -> None:
        for event in events:
            self.stream.append(encode_event(event), entity_key(event).encode())

    def open(self) -> EventSource:
        return MemorySource(self.stream)


class FileBackend:
    """:class:`~arrive.ingest.files.FileReplaySource` of a data directory, with a checkpoint."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def publish(self, events: Sequence[AnyEvent]) -> None:
        write_events(self.directory, events_to_frame(events))

    def open(self) -> EventSource:
        return FileReplaySource(self.directory, checkpoint=self.directory / "checkpoint.json")


class RedisBackend:
    """:class:`~arrive.ingest.redis_streams.RedisStreamSource` on a fresh stream."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stream = unique_name("contract")

    def publish(self, events: Sequence[AnyEvent]) -> None:
        from arrive.ingest.redis_streams import RedisStreamProducer

        producer = RedisStreamProducer(self.url, self.stream)
        producer.publish(events)
        producer.close()

    def open(self) -> EventSource:
        from arrive.ingest.redis_streams import RedisStreamSource

        return RedisStreamSource(self.url, self.stream, group="contract", claim_min_idle_ms=0)


class KafkaBackend:
    """:class:`~arrive.ingest.kafka.KafkaSource` (assigned partitions) on a fresh topic."""

    def __init__(self, bootstrap_servers: str, partitions: int = 3) -> None:
        from arrive.testing.servers.kafka_broker import create_topic

        self.bootstrap_servers = bootstrap_servers
        self.topic = unique_name("contract")
        self.partitions = partitions
        create_topic(bootstrap_servers, self.topic, partitions)

    def publish(self, events: Sequence[AnyEvent]) -> None:
        from arrive.ingest.kafka import KafkaEventProducer

        KafkaEventProducer(self.bootstrap_servers, self.topic).publish(events)

    def open(self) -> EventSource:
        from arrive.ingest.kafka import KafkaSource

        return KafkaSource(
            self.bootstrap_servers,
            self.topic,
            "contract",
            partitions=list(range(self.partitions)),
            config=FAST_FETCH_CONFIG,
        )


def _assert_same(got: Sequence[str], expected: Iterable[str]) -> None:
    """``got`` holds exactly the ids ``expected``, each once."""
    want = set(expected)
    duplicates = sorted(i for i, count in Counter(got).items() if count > 1)
    assert not duplicates, f"delivered more than once: {duplicates[:10]}"
    missing, unexpected = sorted(want - set(got)), sorted(set(got) - want)
    assert not missing, f"{len(missing)} never delivered: {missing[:10]}"
    assert not unexpected, f"{len(unexpected)} delivered unexpectedly: {unexpected[:10]}"


def _assert_key_order(messages: Sequence[RawMessage]) -> None:
    by_key: dict[str, list[datetime]] = defaultdict(list)
    for message in messages:
        event = decode_event(message.payload)
        by_key[entity_key(event)].append(event.event_time)
    for key, times in by_key.items():
        assert times == sorted(times), f"events of {key} arrived out of order"


class SourceContract:
    """The behaviour every event source shares. Needs a ``source_backend`` fixture."""

    n = 60

    @pytest.fixture
    def published(self, source_backend: SourceBackend) -> list[AnyEvent]:
        events = contract_events(self.n)
        source_backend.publish(events)
        return events

    def test_delivers_every_event_once_in_key_order(
        self, source_backend: SourceBackend, published: list[AnyEvent]
    ) -> None:
        source = source_backend.open()
        got = drain(source, self.n)
        source.close()
        _assert_same(event_ids(got), [e.event_id for e in published])
        _assert_key_order(got)

    def test_payload_is_the_canonical_json_of_the_event(
        self, source_backend: SourceBackend, published: list[AnyEvent]
    ) -> None:
        source = source_backend.open()
        got = {decode_event(m.payload).event_id: decode_event(m.payload) for m in drain(source, 5)}
        source.close()
        changed = [e.event_id for e in published if e.event_id in got and got[e.event_id] != e]
        assert not changed, f"events changed on the way: {changed}"

    def test_restart_resumes_after_the_committed_position(
        self, source_backend: SourceBackend, published: list[AnyEvent]
    ) -> None:
        source = source_backend.open()
        first = drain(source, 20)
        source.commit([m.position for m in first])
        source.close()
        restarted = source_backend.open()
        rest = drain(restarted, self.n - 20)
        extra = restarted.poll(10, 0.2)
        restarted.close()
        assert not extra, f"{len(extra)} more messages than were left uncommitted"
        _assert_same(event_ids(rest), {e.event_id for e in published} - set(event_ids(first)))
        _assert_key_order(rest)

    def test_uncommitted_messages_are_delivered_again_after_a_restart(
        self, source_backend: SourceBackend, published: list[AnyEvent]
    ) -> None:
        source = source_backend.open()
        delivered = drain(source, 30)
        source.commit([m.position for m in delivered[:10]])
        source.close()  # as if killed: 20 delivered messages were never committed
        restarted = source_backend.open()
        again = drain(restarted, self.n - 10)
        restarted.close()
        _assert_same(
            event_ids(again), {e.event_id for e in published} - set(event_ids(delivered[:10]))
        )
        _assert_key_order(again)

    def test_committing_twice_or_nothing_changes_nothing(
        self, source_backend: SourceBackend, published: list[AnyEvent]
    ) -> None:
        source = source_backend.open()
        first = drain(source, 10)
        source.commit([])
        source.commit([m.position for m in first])
        source.commit([m.position for m in first])
        source.close()
        restarted = source_backend.open()
        rest = drain(restarted, self.n - 10)
        restarted.close()
        again = set(event_ids(rest)) & set(event_ids(first))
        assert not again, f"committed messages delivered again: {sorted(again)}"

    def test_poll_after_the_last_event_returns_nothing(
        self, source_backend: SourceBackend, published: list[AnyEvent]
    ) -> None:
        source = source_backend.open()
        drain(source, self.n)
        extra = source.poll(10, 0.1)
        source.close()
        assert not extra, f"{len(extra)} messages after the last one"
