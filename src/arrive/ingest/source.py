"""The EventSource Protocol: where raw events come from, and how they are acknowledged.

A source only fetches raw messages and acknowledges them; decoding, validation,
dead-lettering and applying are the :mod:`arrive.ingest.runner`'s job. Delivery is
at least once: a message whose position was not committed is delivered again
after a restart, so whatever applies events must be idempotent.

On the wire an event is its canonical JSON (:func:`arrive.schema.codec.encode_event`).
Per-entity order holds because producers key messages by :func:`entity_key`.

:class:`MemoryStream` / :class:`MemorySource` are the in-process implementation
(the default in tests); :mod:`arrive.ingest.files`, :mod:`arrive.ingest.redis_streams`
and :mod:`arrive.ingest.kafka` are the others. All pass
:mod:`arrive.testing.source_contract`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from arrive.schema.events import Event


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a message sits in its source.

    Attributes:
        stream: the topic, stream key or directory the message came from.
        partition: the partition (0 for unpartitioned sources).
        offset: the offset (Kafka, file row) or entry id (Redis Streams).
    """

    stream: str
    partition: int
    offset: int | str

    def __str__(self) -> str:
        return f"{self.stream}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One undecoded message: the payload bytes as the source holds them, and where."""

    payload: bytes
    position: Position
    key: bytes | None = None


class EventSource(Protocol):
    """A stream of raw event messages with commit-after-apply acknowledgement.

    To implement, provide at least:

    * ``poll(max_events, timeout_s)``: up to ``max_events`` messages, waiting at most
      about ``timeout_s`` seconds for the first; ``[]`` when none arrived. Messages
      sharing a key come in the order they were produced.
    * ``commit(positions)``: acknowledge messages that were handled; after a restart
      they are not delivered again. Committing a position implies nothing about
      earlier uncommitted positions of other partitions.
    * ``exhausted``: ``True`` once a finite source (a file replay) has delivered
      everything it ever will; always ``False`` for streams.
    * ``close()``: release connections without committing anything.

    Not thread-safe: one consumer thread per source.
    """

    def poll(self, max_events: int, timeout_s: float) -> list[RawMessage]: ...

    def commit(self, positions: Sequence[Position]) -> None: ...

    @property
    def exhausted(self) -> bool: ...

    def close(self) -> None: ...


def entity_key(event: Event) -> str:
    """The key under which ``event``'s order must hold: its order, else courier, else market.

    Events with none of these (none exist in schema v1) fall back to their ``event_id``.
    """
    for name in ("order_id", "courier_id", "market_id"):
        value = getattr(event, name, None)
        if isinstance(value, str):
            return value
    return event.event_id


@dataclass
class MemoryStream:
    """An append-only in-process log with one committed offset: the state a
    :class:`MemorySource` consumes and that survives the source being reopened."""

    name: str = "memory"
    entries: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    committed: int = 0

    def append(self, payload: bytes, key: bytes | None = None) -> None:
        self.entries.append((key, payload))


class MemorySource:
    """An :class:`EventSource` over a :class:`MemoryStream`, starting at its committed offset.

    Args:
        stream: the log to read.
        finite: report :attr:`exhausted` once the end of the log is reached
            (like a file replay) instead of waiting for more (like a stream).
    """

    def __init__(self, stream: MemoryStream, *, finite: bool = False) -> None:
        self._stream = stream
        self._next = stream.committed
        self._finite = finite
        self.closed = False

    def poll(self, max_events: int, timeout_s: float) -> list[RawMessage]:
        end = min(self._next + max_events, len(self._stream.entries))
        batch = [
            RawMessage(payload, Position(self._stream.name, 0, index), key)
            for index, (key, payload) in enumerate(
                self._stream.entries[self._next : end], start=self._next
            )
        ]
        self._next = end
        return batch

    def commit(self, positions: Sequence[Position]) -> None:
        offsets = [p.offset for p in positions if isinstance(p.offset, int)]
        if offsets:
            self._stream.committed = max(self._stream.committed, max(offsets) + 1)

    @property
    def exhausted(self) -> bool:
        return self._finite and self._next >= len(self._stream.entries)

    def close(self) -> None:
        self.closed = True
