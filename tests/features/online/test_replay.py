"""The one event-log replay: applied in pieces, it leaves the store as one whole apply
does, and it pauses strictly before a given time with the watermark there."""

from __future__ import annotations

from typing import Any

import polars as pl

from arrive.features.online.engine import OnlineEngine
from arrive.features.online.replay import LogReplay, replay_order
from arrive.schema.frame import frame_to_events
from arrive.store.base import to_epoch_us
from arrive.store.memory import InMemoryStore
from arrive.testing.factories import random_marketplace


def _log() -> pl.DataFrame:
    return replay_order(random_marketplace(3, n_orders=80).events.lazy()).collect()


def _values(store: InMemoryStore) -> dict[Any, dict[str, object]]:
    return {k: {n: v.value for n, v in row.items()} for k, row in store._rows.items()}


def test_a_log_replayed_in_pieces_leaves_the_store_of_one_whole_apply() -> None:
    log = _log()
    whole = InMemoryStore()
    OnlineEngine(whole).apply(list(frame_to_events(log)))
    pieces = InMemoryStore()
    replay = LogReplay(log, OnlineEngine(pieces))
    assert replay.last_time is None
    sizes = []
    while not replay.done:
        sizes.append(replay.apply_next(7))
    assert sum(sizes) == replay.applied == log.height
    assert set(sizes[:-1]) == {7}
    assert replay.last_time == log.get_column("event_time")[-1]
    assert replay.apply_next(7) == 0
    assert _values(pieces) == _values(whole)


def test_apply_before_stops_strictly_before_the_time_and_moves_the_watermark_there() -> None:
    log = _log()
    times = log.get_column("event_time")
    when = times[log.height // 2]
    engine = OnlineEngine(InMemoryStore())
    replay = LogReplay(log, engine)
    replay.apply_before(when)
    assert replay.applied == (times < when).sum()
    assert replay.last_time is not None
    assert replay.last_time < when
    assert engine.watermark_us == to_epoch_us(when)
    replay.apply_before(when)  # nothing more before the same time
    assert replay.applied == (times < when).sum()
