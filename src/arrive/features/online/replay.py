"""Replaying an event log through the online engine, in event time: the one replay.

The service's ``--replay-dir`` feeder applies a whole log chunk by chunk; parity, the
live demo and the feature tests pause at chosen order creations to look at the
online state (read features, or ask the ETA service). All of them order the log with
:func:`replay_order` and apply it with a :class:`LogReplay`; :func:`replay_until`
hands each chosen order back at its creation time.

It lives beside the engine rather than in ``ingest/`` because parity (in
``features/``) replays too, and ``ingest/`` already imports ``features/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice

import polars as pl

from arrive.features.online.engine import OnlineEngine
from arrive.schema.events import AnyEvent, OrderCreated
from arrive.schema.frame import frame_to_events


def replay_order(events: pl.LazyFrame) -> pl.LazyFrame:
    """``events`` in the order every replay applies them: by event time, ties by event
    id, then as stored (a stable sort, so a replay is the same on every run)."""
    return events.sort("event_time", "event_id", maintain_order=True)


class LogReplay:
    """Applies ``log`` to ``engine`` from its first event on, a piece at a time.

    Args:
        log: the event log in :func:`replay_order`.
        engine: the engine that applies the events (it writes to its store).

    Not thread-safe: one thread drives a replay.
    """

    def __init__(self, log: pl.DataFrame, engine: OnlineEngine) -> None:
        self.log = log
        self.engine = engine
        self.applied = 0
        self._times = log.get_column("event_time")
        self._stream: Iterator[AnyEvent] = frame_to_events(log)

    @property
    def done(self) -> bool:
        """True once every event of the log is applied."""
        return self.applied >= self.log.height

    @property
    def last_time(self) -> datetime | None:
        """The event time of the last event applied (None before the first)."""
        return self._times[self.applied - 1] if self.applied else None

    def apply_next(self, n: int) -> int:
        """Apply the next ``n`` events (fewer at the end of the log); returns how many."""
        events = list(islice(self._stream, n))
        if events:
            self.engine.apply(events)
            self.applied += len(events)
        return len(events)

    def apply_before(self, when: datetime) -> None:
        """Apply every event strictly before ``when``, then move the watermark to it."""
        end = int(self._times.search_sorted(when, side="left"))
        if end > self.applied:
            self.apply_next(end - self.applied)
        self.engine.advance(when)


def replay_until(
    log: pl.DataFrame, orders: Iterable[OrderCreated], engine: OnlineEngine
) -> Iterator[OrderCreated]:
    """Yield each of ``orders`` (in creation order) once every event of ``log`` strictly
    before its creation time is applied to ``engine`` and the watermark stands at it.

    Args:
        log: the event log in :func:`replay_order`.
        orders: the orders to pause at; any order, duplicates are kept.
        engine: the engine that applies the events (it writes to its store).
    """
    replay = LogReplay(log, engine)
    for order in sorted(orders, key=lambda e: (e.event_time, e.order_id)):
        replay.apply_before(order.event_time)
        yield order


def created_events(log: pl.DataFrame, order_ids: pl.Series) -> dict[str, OrderCreated]:
    """The ``order_created`` event of each order in ``order_ids`` found in ``log``."""
    frame = log.filter((pl.col("type") == "order_created") & pl.col("order_id").is_in(order_ids))
    return {e.order_id: e for e in frame_to_events(frame) if isinstance(e, OrderCreated)}
