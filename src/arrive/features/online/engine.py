"""The ingest engine: applies events in event time and keeps every online feature
current in an :class:`~arrive.store.base.OnlineStore`.

Order lifecycles become observation streams (``delivery``, ``prep``, ``created``,
``open``; see :data:`arrive.features.windows.Stream`) that feed each
:class:`~arrive.features.windows.Trailing` family; windows expire as the watermark
(the latest event time seen, or a time the caller advances to) moves on.
:class:`~arrive.features.spec.Latest` families store each observation at its event
time; courier pings update :class:`~arrive.features.courier.CourierCells`.

Delivery is at least once: every update is idempotent (an order's lifecycle counts
each step once, a ping or observation older than the stored one changes nothing).
An event older than the watermark minus the allowed lateness is refused as late.
Writes are batched: :meth:`OnlineEngine.apply` and :meth:`OnlineEngine.advance`
end with one ``put_many``.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from arrive.errors import ConfigError
from arrive.features.courier import CourierCells
from arrive.features.online.parts import CELL_KIND, LATEST, PIPELINE_KEY, TRAILING, order_keys
from arrive.features.windows import Stat, WindowState
from arrive.schema.events import (
    EVENT_TYPES,
    AnyEvent,
    Cancelled,
    CourierPing,
    Delivered,
    FoodReady,
    MarketSnapshot,
    OrderConfirmed,
    OrderCreated,
    WeatherObservation,
)
from arrive.store.base import EntityKey, FeatureValue, OnlineStore, to_epoch_us

_US = 1_000_000
CHECKPOINT_VERSION = 1


@dataclass(slots=True)
class OrderState:
    """What the engine knows of one order."""

    created_us: int
    keys: dict[str, str]  # store_id, market_id, courier_id, day, market_day (when known)
    confirmed_us: int | None = None
    ready: bool = False
    delivered: bool = False
    finished: bool = False


@dataclass(frozen=True, slots=True)
class Refused:
    """An event the engine did not apply, and why."""

    event: AnyEvent
    field: str
    reason: str


@dataclass
class EngineCounts:
    """What the engine has done (cumulative)."""

    applied: int = 0
    late: int = 0
    duplicates: int = 0
    unmatched: int = 0
    writes: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class OnlineEngine:
    """Keeps online features current from events.

    Args:
        store: where features are written.
        local_timezone: the marketplace's IANA zone (local-day features).
        lateness_s: how far behind the watermark an event may be and still apply.
        retention_s: how long a finished order is remembered (duplicates of its
            events within this time change nothing); default: 2 days or the lateness.
    """

    def __init__(
        self,
        store: OnlineStore,
        *,
        local_timezone: str = "UTC",
        lateness_s: float = 60.0,
        retention_s: float | None = None,
    ) -> None:
        retention_s = max(2 * 86400.0, lateness_s) if retention_s is None else retention_s
        if lateness_s < 0 or retention_s < lateness_s:
            raise ConfigError("lateness_s: must be ≥ 0 and no more than retention_s")
        self.store = store
        self.zone = ZoneInfo(local_timezone)
        self.lateness_us = int(lateness_s * _US)
        self.retention_us = int(retention_s * _US)
        self.watermark_us: int | None = None
        self._stamp_us = 0  # event time of the last write of maintained values
        self.counts = EngineCounts()
        self._orders: dict[str, OrderState] = {}
        self._finished: deque[tuple[int, str]] = deque()
        self._windows: dict[tuple[int, str], dict[str, WindowState]] = {}
        self._due: list[tuple[int, int, str, str]] = []  # (expiry µs, part, entity id, window)
        self._couriers = CourierCells()
        self._dirty: dict[tuple[int, str], set[str]] = {}  # → windows that changed
        self._dirty_cells: set[str] = set()
        self._pending: list[tuple[EntityKey, dict[str, FeatureValue]]] = []
        self._streams: dict[str, list[int]] = {}
        self._columns: list[dict[str, list[tuple[Stat, str]]]] = []
        for part in TRAILING:
            by_window: dict[str, list[tuple[Stat, str]]] = {}
            for (label, stat), name in part.columns().items():
                by_window.setdefault(label, []).append((stat, name))
            self._columns.append(by_window)
        for index, part in enumerate(TRAILING):
            self._streams.setdefault(part.stream, []).append(index)

    # -- applying events -------------------------------------------------

    def apply(self, events: Sequence[AnyEvent]) -> list[Refused]:
        """Apply ``events`` (any order within the lateness) and write what changed.

        Returns:
            The events refused as late, with the reason.
        """
        refused: list[Refused] = []
        for event in events:
            time_us = to_epoch_us(event.event_time)
            mark = self.watermark_us
            if mark is not None and time_us < mark - self.lateness_us:
                late_s = (mark - time_us) / _US
                reason = (
                    f"{late_s:.1f} s behind the watermark (allowed {self.lateness_us / _US:g} s)"
                )
                refused.append(Refused(event, "event_time", reason))
                self.counts.late += 1
                continue
            self._expire(time_us)
            self._apply_one(event, time_us)
            self.counts.applied += 1
        if self.watermark_us is not None:
            self._expire(self.watermark_us)
        self._flush()
        return refused

    def advance(self, now: datetime) -> None:
        """Move the watermark to ``now`` (no event before it is still to come, except
        within the lateness), expire windows and write what changed."""
        self._expire(to_epoch_us(now))
        self._flush()

    def _apply_one(self, event: AnyEvent, time_us: int) -> None:
        if isinstance(event, OrderCreated):
            self._created(event, time_us)
        elif isinstance(event, CourierPing):
            changed = self._couriers.ping(
                event.courier_id, event.lat, event.lon, event.status == "idle", time_us
            )
            self._dirty_cells |= changed
        elif isinstance(event, WeatherObservation | MarketSnapshot):
            self._observed(event, time_us)
        elif isinstance(event, OrderConfirmed | FoodReady | Delivered | Cancelled):
            self._lifecycle(event, time_us)

    def _created(self, event: OrderCreated, time_us: int) -> None:
        if event.order_id in self._orders:
            self.counts.duplicates += 1
            return
        keys = order_keys(event, event.event_time.astimezone(self.zone).date().isoformat())
        self._orders[event.order_id] = OrderState(time_us, keys)
        self._observe("created", keys, time_us, 1.0)
        self._observe("open", keys, time_us, 1.0)

    def _lifecycle(
        self, event: OrderConfirmed | FoodReady | Delivered | Cancelled, time_us: int
    ) -> None:
        order = self._orders.get(event.order_id)
        if order is None:
            self.counts.unmatched += 1
            return
        if isinstance(event, OrderConfirmed):
            if order.confirmed_us is None:
                order.confirmed_us = time_us
        elif isinstance(event, FoodReady):
            if not order.ready:
                order.ready = True
                start = order.confirmed_us if order.confirmed_us is not None else order.created_us
                self._observe("prep", order.keys, time_us, (time_us - start) / _US)
        else:
            if isinstance(event, Delivered) and not order.delivered:
                order.delivered = True
                self._observe("delivery", order.keys, time_us, (time_us - order.created_us) / _US)
            if not order.finished:
                order.finished = True
                self._observe("open", order.keys, time_us, -1.0)
                self._finished.append((time_us, event.order_id))

    def _observe(self, stream: str, keys: dict[str, str], time_us: int, value: float) -> None:
        for index in self._streams.get(stream, ()):
            part = TRAILING[index]
            entity_id = keys.get(part.key)
            if entity_id is None:
                continue
            windows = self._windows.get((index, entity_id))
            if windows is None:
                windows = {label: WindowState(_length_us(w)) for label, w in part.windows.items()}
                self._windows[(index, entity_id)] = windows
            for label, window in windows.items():
                window.add(time_us, value)
                if window.length_us is not None:
                    due = (time_us + window.length_us, index, entity_id, label)
                    heapq.heappush(self._due, due)
            self._dirty[(index, entity_id)] = set(windows)

    def _observed(self, event: WeatherObservation | MarketSnapshot, time_us: int) -> None:
        for part in LATEST:
            if EVENT_TYPES[part.event_type] is not type(event):
                continue
            values = {name: _scalar(getattr(event, f)) for f, name in part.columns.items()}
            if part.derive:
                values |= part.derive(values)
            key = (part.entity, str(getattr(event, part.key)))
            self._pending.append((key, {n: FeatureValue(v, time_us) for n, v in values.items()}))

    # -- time ------------------------------------------------------------

    def _expire(self, now_us: int) -> None:
        """Advance the watermark to ``now_us`` (if later) and drop observations that left
        their window (an observation at ``o`` counts at ``t`` while ``o + length >= t``).
        Also catches late observations that arrived already outside a window."""
        if self.watermark_us is None or now_us > self.watermark_us:
            self.watermark_us = now_us
        mark = self.watermark_us
        due = self._due
        while due and due[0][0] < mark:
            _, index, entity_id, label = heapq.heappop(due)
            self._windows[(index, entity_id)][label].expire(mark)
            self._dirty.setdefault((index, entity_id), set()).add(label)
        horizon = mark - self.retention_us
        while self._finished and self._finished[0][0] < horizon:
            self._orders.pop(self._finished.popleft()[1], None)

    # -- writing ---------------------------------------------------------

    def _flush(self) -> None:
        """Write what changed. Maintained values are stamped with the watermark, or just
        after the previous stamp (of this run, or of a killed earlier one: see
        :meth:`restore`) if that is later, so every write supersedes the ones before it
        even when late events leave the watermark where it was."""
        if self.watermark_us is None:
            return
        mark = self._stamp_us = max(self.watermark_us, self._stamp_us + 1)
        rows: dict[EntityKey, dict[str, FeatureValue]] = {
            PIPELINE_KEY: {"watermark": FeatureValue(float(self.watermark_us), mark)}
        }
        for (index, entity_id), labels in self._dirty.items():
            windows = self._windows[(index, entity_id)]
            row = rows.setdefault((TRAILING[index].entity, entity_id), {})
            columns = self._columns[index]
            for label in labels:
                window = windows[label]
                for stat, name in columns[label]:
                    row[name] = FeatureValue(window.stat(stat), mark)
        for cell in self._dirty_cells:
            rows[(CELL_KIND, cell)] = {"idle": FeatureValue(self._couriers.packed(cell), mark)}
        batch = [*rows.items(), *self._pending]  # the watermark first: see restore
        self.store.put_many(batch)
        self.counts.writes += len(batch)
        self._dirty.clear()
        self._dirty_cells.clear()
        self._pending.clear()

    # -- checkpoints -----------------------------------------------------

    def checkpoint(self) -> bytes:
        """The engine's whole state (after a flush) as bytes; see :meth:`restore`."""
        self._flush()
        state = {
            "version": CHECKPOINT_VERSION,
            "parts": [repr(p) for p in TRAILING],
            "watermark_us": self.watermark_us,
            "orders": {
                k: [o.created_us, o.keys, o.confirmed_us, o.ready, o.delivered, o.finished]
                for k, o in self._orders.items()
            },
            "finished": list(self._finished),
            "windows": [
                [index, entity_id, {label: w.to_state() for label, w in windows.items()}]
                for (index, entity_id), windows in self._windows.items()
            ],
            "due": self._due,
            "couriers": self._couriers.to_state(),
        }
        return msgspec.msgpack.encode(state)

    def restore(self, data: bytes) -> None:
        """Replace the engine's state with a :meth:`checkpoint` of the same definitions.

        Raises:
            ConfigError: the checkpoint is unreadable or was written by other feature
                definitions (delete it to rebuild from the stream).
        """
        try:
            state: dict[str, Any] = msgspec.msgpack.decode(data)
        except msgspec.DecodeError as exc:
            raise ConfigError(f"checkpoint: unreadable ({exc})") from exc
        if state.get("version") != CHECKPOINT_VERSION or state.get("parts") != [
            repr(p) for p in TRAILING
        ]:
            raise ConfigError("checkpoint: written by other feature definitions; delete it")
        self.watermark_us = state["watermark_us"]
        self._orders = {k: OrderState(*v) for k, v in state["orders"].items()}
        self._finished = deque((t, o) for t, o in state["finished"])
        self._windows = {
            (index, entity_id): {
                label: WindowState.from_state(_length_us(TRAILING[index].windows[label]), tuple(s))
                for label, s in windows.items()
            }
            for index, entity_id, windows in state["windows"]
        }
        self._due = [tuple(d) for d in state["due"]]
        heapq.heapify(self._due)
        self._couriers = CourierCells.from_state(state["couriers"])
        # A run killed after this checkpoint may have written later stamps; the
        # watermark row is written first in every batch, so its stamp bounds them.
        last = (self.store.get_many([PIPELINE_KEY])[0] or {}).get("watermark")
        if last is not None:
            self._stamp_us = max(self._stamp_us, last.event_time_us + 1)


def _length_us(length: Any) -> int | None:
    return None if length is None else int(length.total_seconds() * _US)


def _scalar(value: object) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return str(value)
