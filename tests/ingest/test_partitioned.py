"""Partitioned ingest in memory: the route and own stages, ownership moves and a lost
owner, against one engine that applied every event."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from arrive.clock import ManualClock
from arrive.errors import ConfigError
from arrive.features.online.engine import OnlineEngine
from arrive.ingest.deadletter import MemoryDeadLetter
from arrive.ingest.partitioned import (
    TICK_KEY,
    MemoryCheckpoints,
    MemoryRoutes,
    Outgoing,
    OwnedMessage,
    Owners,
    Router,
    owner,
)
from arrive.ingest.source import entity_key
from arrive.schema.frame import frame_to_events
from arrive.store.base import EntityKey
from arrive.store.memory import InMemoryStore
from arrive.testing.source_contract import START

PARTITIONS = 4
LATENESS_S = 3 * 86400.0
Values = dict[EntityKey, dict[str, object]]


@pytest.fixture(scope="module")
def events() -> list[Any]:
    from arrive.testing.factories import random_marketplace

    frame = random_marketplace(5, n_orders=200).events.sort("event_time", "event_id")
    return list(frame_to_events(frame))


def _values(store: InMemoryStore) -> Values:
    keys = [k for k in store._rows if k[0] != "pipeline"]
    rows = store.get_many(keys)
    return {k: {n: v.value for n, v in (r or {}).items()} for k, r in zip(keys, rows, strict=True)}


def _reference(events: list[Any]) -> Values:
    store = InMemoryStore()
    OnlineEngine(store, lateness_s=LATENESS_S).apply(events)
    return _values(store)


class Log:
    """The owned topic: one list of (key, value) per partition."""

    def __init__(self) -> None:
        self.parts: list[list[tuple[bytes, bytes]]] = [[] for _ in range(PARTITIONS)]

    def publish(self, messages: list[Outgoing]) -> None:
        for partition, key, value in messages:
            self.parts[partition].append((key, value))

    def read(self, partition: int, start: int, n: int) -> list[OwnedMessage]:
        chunk = self.parts[partition][start : start + n]
        return [OwnedMessage(partition, start + i, k, v) for i, (k, v) in enumerate(chunk)]


def _routed(events: list[Any], batch: int = 50) -> Log:
    log = Log()
    router = Router(log.publish, MemoryRoutes(), PARTITIONS)
    for i in range(0, len(events), batch):
        router(events[i : i + batch])
    return log


def _routed_by_two(events: list[Any]) -> Log:
    """Two routers, the second a whole input partition behind: the owners see its events
    below a watermark the first one's ticks already moved, as happens in a group."""
    log = Log()
    router = Router(log.publish, MemoryRoutes(), PARTITIONS)
    inputs = [[e for e in events if zlib.crc32(entity_key(e).encode()) % 2 == n] for n in range(2)]
    for part in inputs:
        for i in range(0, len(part), 50):
            router(part[i : i + 50])
    return log


def _owners(store: InMemoryStore, checkpoints: MemoryCheckpoints) -> Owners:
    settings = {"lateness_s": LATENESS_S}
    clock = ManualClock(START)
    return Owners(
        store, checkpoints, PARTITIONS, MemoryDeadLetter(), clock, engine_settings=settings
    )


def _consume(
    owners: Owners, log: Log, partition: int, until: int | None = None, size: int = 37
) -> None:
    start = owners.next_offsets.get(partition, 0)
    end = len(log.parts[partition]) if until is None else until
    while start < end:
        batch = log.read(partition, start, min(size, end - start))
        owners.apply(batch)
        start = owners.next_offsets[partition]


def test_owner_partitions_together_hold_the_features_of_one_engine(events: list[Any]) -> None:
    log = _routed(events)
    store = InMemoryStore()
    owners = _owners(store, MemoryCheckpoints())
    for partition in range(PARTITIONS):
        owners.assign(partition)
        _consume(owners, log, partition)
    assert all(log.parts), "every owner partition has work"
    assert _values(store) == _reference(events)


def test_an_engine_that_owns_everything_of_its_partition_only_is_not_enough(
    events: list[Any],
) -> None:
    """The check above can fail: one owner partition alone misses the others' windows."""
    log = _routed(events)
    store = InMemoryStore()
    owners = _owners(store, MemoryCheckpoints())
    owners.assign(0)
    _consume(owners, log, 0)
    assert _values(store) != _reference(events)


def test_a_partition_moves_and_a_killed_owner_is_replaced_without_loss_or_double_counting(
    events: list[Any],
) -> None:
    log = _routed(events)
    store, checkpoints = InMemoryStore(), MemoryCheckpoints()
    first, second = _owners(store, checkpoints), _owners(store, checkpoints)
    for partition in range(PARTITIONS):
        first.assign(partition)
        _consume(first, log, partition, until=len(log.parts[partition]) // 2)
    first.save_all()
    for partition in range(PARTITIONS):  # more work, applied and written, never saved
        _consume(first, log, partition, until=len(log.parts[partition]) * 3 // 4)
    first.revoke(0)  # a clean move: saved on the way out
    first.engines.clear()  # SIGKILL: 1, 2 and 3 lose what they did since the save
    for partition in range(PARTITIONS):
        assert second.assign(partition) is not None
        _consume(second, log, partition)
    assert _values(store) == _reference(events)


def test_an_owner_killed_before_its_first_save_is_superseded_by_the_replay(
    events: list[Any],
) -> None:
    """The killed owner wrote later states in small batches (its stamps creep one per
    flush while the watermark stands still); the replacement has no checkpoint and
    replays from the beginning in larger batches: its writes must still win."""
    log = _routed_by_two(events)
    store, checkpoints = InMemoryStore(), MemoryCheckpoints()
    first, second = _owners(store, checkpoints), _owners(store, checkpoints)
    for partition in range(PARTITIONS):
        first.assign(partition)
        _consume(first, log, partition, until=len(log.parts[partition]) * 3 // 4, size=1)
    for partition in range(PARTITIONS):  # SIGKILL before any save
        assert second.assign(partition) is None
        _consume(second, log, partition, size=500)
    assert _values(store) == _reference(events)


def test_a_lost_partition_is_dropped_without_rolling_its_checkpoint_back(
    events: list[Any],
) -> None:
    log = _routed(events)
    store, checkpoints = InMemoryStore(), MemoryCheckpoints()
    zombie, successor = _owners(store, checkpoints), _owners(store, checkpoints)
    zombie.assign(0)
    _consume(zombie, log, 0, until=10)
    zombie.save_all()
    successor.assign(0)  # the group gave partition 0 away while the zombie was silent
    _consume(successor, log, 0, until=20)
    successor.save_all()
    zombie.drop(0)
    assert 0 not in zombie.engines
    assert checkpoints.saved[0][0] == 20


def test_routing_is_stable_and_ticks_reach_every_owner(events: list[Any]) -> None:
    assert owner("store_id", "s1", PARTITIONS) == owner("store_id", "s1", PARTITIONS)
    log = _routed(events[:10], batch=10)
    assert all(part[-1][0] == TICK_KEY for part in log.parts)
    with pytest.raises(ConfigError, match="partitions"):
        Router(log.publish, MemoryRoutes(), 0)
