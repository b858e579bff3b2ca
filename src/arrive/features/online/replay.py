"""Replaying an event log in event time, pausing at chosen order creations.

Parity and the live demo both need the same thing: apply every event that happened
before an order was created, move the engine's watermark to that moment, then look
at the online state (read features, or ask the ETA service). :func:`replay_until`
does the replay and hands each chosen order back at its creation time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import polars as pl

from arrive.features.online.engine import OnlineEngine
from arrive.schema.events import AnyEvent, OrderCreated
from arrive.schema.frame import frame_to_events


def replay_until(
    log: pl.DataFrame, orders: Iterable[OrderCreated], engine: OnlineEngine
) -> Iterator[OrderCreated]:
    """Yield each of ``orders`` (in creation order) once every event of ``log`` strictly
    before its creation time is applied to ``engine`` and the watermark stands at it.

    Args:
        log: the event log, sorted by ``event_time`` (ties in a fixed order).
        orders: the orders to pause at; any order, duplicates are kept.
        engine: the engine that applies the events (it writes to its store).
    """
    times = log.get_column("event_time")
    stream: Iterator[AnyEvent] = frame_to_events(log)
    position = 0
    for order in sorted(orders, key=lambda e: (e.event_time, e.order_id)):
        end = int(times.search_sorted(order.event_time, side="left"))
        if end > position:
            engine.apply([next(stream) for _ in range(end - position)])
            position = end
        engine.advance(order.event_time)
        yield order


def created_events(log: pl.DataFrame, order_ids: pl.Series) -> dict[str, OrderCreated]:
    """The ``order_created`` event of each order in ``order_ids`` found in ``log``."""
    frame = log.filter((pl.col("type") == "order_created") & pl.col("order_id").is_in(order_ids))
    return {e.order_id: e for e in frame_to_events(frame) if isinstance(e, OrderCreated)}
