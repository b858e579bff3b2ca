"""Partitioned ingest: N processes in one Kafka group keep the features of one process.

Two stages run in every ``arrive ingest --partitioned`` process (docs/scaling.md):

* **route** (:class:`Router`): the input topic (keyed by order, courier or market, so
  an order's lifecycle stays in one partition) is consumed by the group, decoded,
  validated and dead-lettered as usual; each valid event is copied to the
  *owner partitions* of the internal topic ``{topic}.owned`` whose windows it
  updates: an order's events to the owners of its store, market, courier, day and
  market-day (looked up by order in :class:`RouteTable`, written at its creation),
  a market snapshot or weather observation to the owner of its key, every courier
  ping to the one owner of the courier cells. After each batch a *tick* (the batch's
  latest event time) goes to every owner partition so all owners' watermarks follow
  the stream's, as one process's does.
* **own** (:class:`Owners`): the internal topic is consumed by a second group; each
  assigned partition has its own :class:`~arrive.features.online.engine.OnlineEngine`
  that updates and writes only the windows that hash to it (:func:`owner`), so each
  window has exactly one writer. Its checkpoint holds its state *and* the offset it
  has applied up to, saved together in :class:`Checkpoints` (Redis), so whoever is
  assigned the partition next (after a join, a leave, or a SIGKILL) restores it and
  seeks to that offset: nothing is lost and nothing counted twice. The route stage is
  at least once (a killed router re-sends a batch); the engines' per-order dedup
  absorbs the duplicates.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

import msgspec

from arrive.clock import Clock
from arrive.errors import ConfigError
from arrive.features.online.engine import EngineCounts, OnlineEngine
from arrive.features.online.parts import CELL_KIND, LATEST, order_keys
from arrive.ingest.deadletter import DeadLetter, DeadLetterRecord
from arrive.ingest.source import Position
from arrive.schema.codec import decode_event, encode_event
from arrive.schema.events import (
    EVENT_TYPES,
    AnyEvent,
    Cancelled,
    CourierPing,
    Delivered,
    FoodReady,
    OrderConfirmed,
    OrderCreated,
)
from arrive.store.base import EPOCH, OnlineStore

logger = logging.getLogger(__name__)

TICK_KEY: Final = b"\x00tick"
"""Key of the internal messages that carry a watermark (value: epoch µs as text)."""
_ORDER_EVENTS: Final = (OrderConfirmed, FoodReady, Delivered, Cancelled)
_ANY_ORDER_EVENT: Final = (OrderCreated, *_ORDER_EVENTS)
_ONE_US: Final = timedelta(microseconds=1)

Outgoing = tuple[int, bytes, bytes]
"""(owner partition, key, value) of one internal message."""


def owner(key: str, entity_id: str, partitions: int) -> int:
    """The owner partition of the windows of ``entity_id`` under ``key`` (stable across
    processes and restarts: CRC-32, not Python's salted ``hash``)."""
    return zlib.crc32(f"{key}={entity_id}".encode()) % partitions


def owned_by(partition: int, partitions: int) -> Callable[[str, str], bool]:
    """The ``owns`` filter of the engine of ``partition``."""
    return lambda key, entity_id: owner(key, entity_id, partitions) == partition


class RouteTable(Protocol):
    """Which owner partitions each order's events go to (written at its creation)."""

    def get_many(self, order_ids: Sequence[str]) -> list[tuple[int, ...] | None]: ...

    def put_many(self, routes: dict[str, tuple[int, ...]]) -> None: ...


class Checkpoints(Protocol):
    """Each owner partition's engine state and the next offset to apply."""

    def load(self, partition: int) -> tuple[int, bytes] | None: ...

    def save(self, partition: int, offset: int, state: bytes) -> None: ...


@dataclass
class MemoryRoutes:
    """A :class:`RouteTable` in a dict (tests, one process)."""

    routes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def get_many(self, order_ids: Sequence[str]) -> list[tuple[int, ...] | None]:
        return [self.routes.get(o) for o in order_ids]

    def put_many(self, routes: dict[str, tuple[int, ...]]) -> None:
        self.routes.update(routes)


@dataclass
class MemoryCheckpoints:
    """:class:`Checkpoints` in a dict (tests, one process)."""

    saved: dict[int, tuple[int, bytes]] = field(default_factory=dict)

    def load(self, partition: int) -> tuple[int, bytes] | None:
        return self.saved.get(partition)

    def save(self, partition: int, offset: int, state: bytes) -> None:
        self.saved[partition] = (offset, state)


class Router:
    """The route stage's ``apply``: sends each event to its owner partitions.

    Args:
        publish: sends internal messages and waits for their acknowledgement.
        routes: the order → owners table.
        partitions: how many owner partitions the internal topic has.
        timezone: the marketplace's zone (the ``day`` an order is keyed by).
    """

    def __init__(
        self,
        publish: Callable[[list[Outgoing]], None],
        routes: RouteTable,
        partitions: int,
        timezone: str = "UTC",
    ) -> None:
        if partitions < 1:
            raise ConfigError(f"partitions: must be at least 1, got {partitions}")
        self.publish = publish
        self.routes = routes
        self.partitions = partitions
        self.zone = ZoneInfo(timezone)
        self.unrouted = 0
        """Order events whose creation was never seen (the engine counts them unmatched)."""

    def __call__(self, events: Sequence[AnyEvent]) -> None:
        created = {e.order_id: self._order_owners(e) for e in events if isinstance(e, OrderCreated)}
        if created:
            self.routes.put_many(created)
        known = self._lookup(events, created)
        out: list[Outgoing] = []
        for event in events:
            targets = self._owners(event, known)
            if targets:
                key, value = _event_key(event), encode_event(event)
                out += [(p, key, value) for p in targets]
        latest = max(e.event_time for e in events)
        tick = str((latest - EPOCH) // _ONE_US).encode()
        out += [(p, TICK_KEY, tick) for p in range(self.partitions)]
        self.publish(out)

    def _order_owners(self, event: OrderCreated) -> tuple[int, ...]:
        day = event.event_time.astimezone(self.zone).date().isoformat()
        keys = order_keys(event, day)
        return tuple(sorted({owner(k, v, self.partitions) for k, v in keys.items()}))

    def _lookup(
        self, events: Sequence[AnyEvent], created: dict[str, tuple[int, ...]]
    ) -> dict[str, tuple[int, ...]]:
        wanted = list(
            dict.fromkeys(
                e.order_id
                for e in events
                if isinstance(e, _ORDER_EVENTS) and e.order_id not in created
            )
        )
        found = self.routes.get_many(wanted) if wanted else []
        return created | {o: r for o, r in zip(wanted, found, strict=True) if r is not None}

    def _owners(self, event: AnyEvent, known: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
        if isinstance(event, _ANY_ORDER_EVENT):
            targets = known.get(event.order_id, ())
            if not targets:
                self.unrouted += 1
            return targets
        if isinstance(event, CourierPing):
            return (owner(CELL_KIND, CELL_KIND, self.partitions),)
        return tuple(
            sorted(
                {
                    owner(part.key, str(getattr(event, part.key)), self.partitions)
                    for part in LATEST
                    if EVENT_TYPES[part.event_type] is type(event)
                }
            )
        )


def _event_key(event: AnyEvent) -> bytes:
    return event.event_id.encode()


@dataclass(frozen=True, slots=True)
class OwnedMessage:
    """One message of the internal topic, as :class:`Owners` takes it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Owners:
    """The own stage: one engine per assigned owner partition, checkpointed with its offset.

    Args:
        store: where features are written (every engine writes only what it owns).
        checkpoints: where each partition's state and offset are saved.
        partitions: how many owner partitions the internal topic has.
        dead_letter: where events refused as late (or undecodable) go.
        clock: for checkpoint timing and dead-letter times.
        engine_settings: keyword arguments of every :class:`OnlineEngine`
            (``local_timezone``, ``lateness_s``).
        checkpoint_s: seconds between saves.
    """

    def __init__(
        self,
        store: OnlineStore,
        checkpoints: Checkpoints,
        partitions: int,
        dead_letter: DeadLetter,
        clock: Clock,
        *,
        engine_settings: dict[str, Any] | None = None,
        checkpoint_s: float = 5.0,
    ) -> None:
        self.store = store
        self.checkpoints = checkpoints
        self.partitions = partitions
        self.dead_letter = dead_letter
        self.clock = clock
        self.engine_settings = engine_settings or {}
        self.checkpoint_s = checkpoint_s
        self.engines: dict[int, OnlineEngine] = {}
        self.next_offsets: dict[int, int] = {}
        self._saved_at = clock.monotonic()
        self.applied = 0
        self._retired = EngineCounts()  # counts of engines whose partition was revoked

    @property
    def counts(self) -> EngineCounts:
        """The counts of every engine this process has run (for metrics)."""
        total = EngineCounts()
        for counts in [self._retired, *(e.counts for e in self.engines.values())]:
            total.applied += counts.applied
            total.late += counts.late
            total.duplicates += counts.duplicates
            total.unmatched += counts.unmatched
            total.writes += counts.writes
        return total

    def assign(self, partition: int) -> int | None:
        """Take ``partition``: restore its engine; returns the offset to resume at
        (None: no checkpoint, start from the beginning)."""
        engine = OnlineEngine(
            self.store, owns=owned_by(partition, self.partitions), **self.engine_settings
        )
        saved = self.checkpoints.load(partition)
        self.engines[partition] = engine
        if saved is None:
            # An owner killed before its first save may have written features already:
            # the replay from the beginning must supersede them (see supersede_stored).
            engine.supersede_stored()
            self.next_offsets.pop(partition, None)
            return None
        offset, state = saved
        engine.restore(state)
        self.next_offsets[partition] = offset
        return offset

    def revoke(self, partition: int) -> None:
        """Give ``partition`` up: save its engine first."""
        self._save(partition)
        self.drop(partition)

    def drop(self, partition: int) -> None:
        """Forget ``partition`` without saving: it was *lost* (this process's session
        expired), so another owner may have it already and a save now would roll its
        checkpoint back."""
        engine = self.engines.pop(partition, None)
        if engine is not None:
            self._retired.applied += engine.counts.applied
            self._retired.late += engine.counts.late
            self._retired.duplicates += engine.counts.duplicates
            self._retired.unmatched += engine.counts.unmatched
            self._retired.writes += engine.counts.writes
        self.next_offsets.pop(partition, None)

    def apply(self, messages: Sequence[OwnedMessage]) -> None:
        """Apply a batch: events per partition, then advance each to its latest tick."""
        by_partition: dict[int, list[OwnedMessage]] = {}
        for message in messages:
            if message.partition in self.engines:
                by_partition.setdefault(message.partition, []).append(message)
        for partition, batch in by_partition.items():
            self._apply(partition, batch)

    def due(self) -> bool:
        return self.clock.monotonic() - self._saved_at >= self.checkpoint_s

    def save_all(self) -> dict[int, int]:
        """Save every engine with its offset; returns partition → next offset saved."""
        self._saved_at = self.clock.monotonic()
        for partition in list(self.engines):
            self._save(partition)
        return dict(self.next_offsets)

    def idle(self, now: datetime) -> None:
        for engine in self.engines.values():
            engine.idle(now)

    def _apply(self, partition: int, batch: list[OwnedMessage]) -> None:
        engine = self.engines[partition]
        events: list[AnyEvent] = []
        tick: int | None = None
        refused: list[DeadLetterRecord] = []
        for message in batch:
            if message.key == TICK_KEY:
                tick = max(tick or 0, int(message.value))
                continue
            try:
                events.append(decode_event(message.value))
            except Exception as exc:  # the router wrote it valid: only a foreign writer
                refused.append(self._refusal(message, "$", f"cannot be decoded ({exc})"))
        if events:
            late = engine.apply(events)
            refused += [
                self._refusal(batch[0], r.field, r.reason, encode_event(r.event)) for r in late
            ]
            self.applied += len(events)
        if tick is not None and (engine.watermark_us is None or tick > engine.watermark_us):
            engine.advance(EPOCH + tick * _ONE_US)
        if refused:
            self.dead_letter.write(refused)
        self.next_offsets[partition] = batch[-1].offset + 1

    def _save(self, partition: int) -> None:
        engine = self.engines.get(partition)
        offset = self.next_offsets.get(partition)
        if engine is not None and offset is not None:
            self.checkpoints.save(partition, offset, engine.checkpoint())

    def _refusal(
        self, message: OwnedMessage, field_name: str, reason: str, payload: bytes | None = None
    ) -> DeadLetterRecord:
        return DeadLetterRecord(
            reason=reason,
            field=field_name,
            payload=message.value if payload is None else payload,
            position=Position("owned", message.partition, message.offset),
            time=self.clock.now(),
        )


def encode_checkpoint(offset: int, state: bytes) -> bytes:
    return msgspec.msgpack.encode([offset, state])


def decode_checkpoint(data: bytes) -> tuple[int, bytes]:
    offset, state = msgspec.msgpack.decode(data, type=tuple[int, bytes])
    return offset, state
