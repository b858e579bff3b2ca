"""The ingest engine: applies events in event time and keeps every online feature
current in an :class:`~arrive.store.base.OnlineStore`.

Order lifecycles become observation streams (``delivery``, ``prep``, ``created``,
``open``; see :data:`arrive.features.windows.Stream`) that feed each
:class:`~arrive.features.windows.Trailing` family. The families reading one stream
by one key share one :class:`~arrive.features.windows.Observations` per entity;
windows expire as the watermark (the latest event time seen, or a time the caller
advances to) moves on, once per batch, and only the windows that changed are
written. Sums are exact, so features never depend on batching or arrival order.
:class:`~arrive.features.spec.Latest` families store each observation at its event
time; courier pings update :class:`~arrive.features.courier.CourierCells`.

Delivery is at least once: every update is idempotent (an order's lifecycle counts
each step once, a ping or observation older than the stored one changes nothing).
An event older than the watermark minus the allowed lateness is refused as late.
Writes are batched: :meth:`OnlineEngine.apply`, :meth:`OnlineEngine.advance` and
:meth:`OnlineEngine.idle` end with one ``put_many``.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from arrive.errors import ConfigError
from arrive.features.courier import CourierCells
from arrive.features.online.parts import CELL_KIND, LATEST, PIPELINE_KEY, TRAILING, order_keys
from arrive.features.windows import UNIT, Observations, Stat, Trailing
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
    TravelTimeObservation,
    WeatherObservation,
)
from arrive.store.base import (
    EPOCH,
    MAX_ABS_EVENT_TIME_US,
    EntityKey,
    FeatureValue,
    OnlineStore,
    ValidRows,
    checked_row,
    to_epoch_us,
)

_US = 1_000_000
_ONE_US = timedelta(microseconds=1)
CHECKPOINT_VERSION = 2
_DAY_BUCKET_US = 15 * 60 * _US  # every UTC offset in use is a multiple of 15 minutes


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


@dataclass(frozen=True, slots=True)
class _Family:
    """The trailing families that read one stream by one key, and where their
    windows sit in that key's :class:`Observations` (slot ``len(lengths)``: all history)."""

    index: int
    stream: str
    key: str
    entity: str
    lengths: tuple[int, ...]
    slots: tuple[tuple[int, int | None, tuple[Stat, ...], tuple[str, ...]], ...]
    """(dirty bit, window or None for all history, statistics, their feature names)."""
    all_slots: int  # the dirty mask with every slot set


def _families(parts: Sequence[Trailing]) -> list[_Family]:
    """``parts`` grouped by the stream and key they read, in first-seen order."""
    grouped: dict[tuple[str, str], list[Trailing]] = {}
    for part in parts:
        grouped.setdefault((part.stream, part.key), []).append(part)
    out: list[_Family] = []
    for (stream, key), group in grouped.items():
        lengths = tuple(
            dict.fromkeys(
                length
                for part in group
                for w in part.windows.values()
                if (length := _length_us(w)) is not None
            )
        )
        columns: list[list[tuple[Stat, str]]] = [[] for _ in range(len(lengths) + 1)]
        for part in group:
            for (label, stat), name in part.columns().items():
                length = _length_us(part.windows[label])
                slot = len(lengths) if length is None else lengths.index(length)
                columns[slot].append((stat, name))
        entity = group[0].entity
        slots = tuple(
            (
                1 << slot,
                None if slot == len(lengths) else slot,
                tuple(stat for stat, _ in c),
                tuple(name for _, name in c),
            )
            for slot, c in enumerate(columns)
            if c
        )
        everything = (1 << len(columns)) - 1
        out.append(_Family(len(out), stream, key, entity, lengths, slots, everything))
    return out


class _Tracked(Observations):
    """One entity's :class:`Observations` for one :class:`_Family`, and its row."""

    __slots__ = ("family", "key", "scheduled")

    def __init__(self, family: _Family, entity_id: str) -> None:
        super().__init__(family.lengths)
        self.family = family
        self.key: EntityKey = (family.entity, entity_id)
        self.scheduled: int | None = None  # due time of its live entry in the engine's heap


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
        owns: ``owns(key, entity_id)`` → whether this engine owns the windows of that
            entity (``key``: ``store_id``, ``market_id``, ``courier_id``, ``day``,
            ``market_day``, a :class:`~arrive.features.spec.Latest` family's key, or
            ``cell`` for the courier cells); None: it owns everything. An engine of
            partitioned ingest (:mod:`arrive.ingest.partitioned`) updates and writes
            only the windows it owns, so each window has exactly one writer.
    """

    def __init__(
        self,
        store: OnlineStore,
        *,
        local_timezone: str = "UTC",
        lateness_s: float = 60.0,
        retention_s: float | None = None,
        owns: Callable[[str, str], bool] | None = None,
    ) -> None:
        retention_s = max(2 * 86400.0, lateness_s) if retention_s is None else retention_s
        if lateness_s < 0 or retention_s < lateness_s:
            raise ConfigError("lateness_s: must be ≥ 0 and no more than retention_s")
        self.store = store
        self.owns = owns
        self.zone = ZoneInfo(local_timezone)
        self.lateness_us = int(lateness_s * _US)
        self.retention_us = int(retention_s * _US)
        self.watermark_us: int | None = None
        self._stamp_us = 0  # event time of the last write of maintained values
        self.counts = EngineCounts()
        self._orders: dict[str, OrderState] = {}
        self._finished: deque[tuple[int, str]] = deque()
        self._families = _families(TRAILING)
        self._streams: dict[str, list[_Family]] = {}
        for family in self._families:
            self._streams.setdefault(family.stream, []).append(family)
        self._tracked: list[dict[str, _Tracked]] = [{} for _ in self._families]
        self._due: list[tuple[int, int, _Tracked]] = []  # (when µs, tie-break, series)
        self._tie = itertools.count()
        self._couriers = CourierCells()
        self._dirty: dict[_Tracked, int] = {}  # → mask of the slots that changed
        self._dirty_cells: set[str] = set()
        self._pending: list[tuple[EntityKey, dict[str, FeatureValue]]] = []
        self._days: dict[int, str] = {}  # 15-minute bucket → local date

    # -- applying events -------------------------------------------------

    def apply(self, events: Sequence[AnyEvent]) -> list[Refused]:
        """Apply ``events`` (any order within the lateness) and write what changed.

        Returns:
            The events refused as late, with the reason.
        """
        with _collector_paused():
            refused = self._apply(events)
            if self.watermark_us is not None:
                self._expire(self.watermark_us)
            self._flush()
        return refused

    def _apply(self, events: Sequence[AnyEvent]) -> list[Refused]:
        refused: list[Refused] = []
        lateness_us, handlers = self.lateness_us, _HANDLERS
        applied = 0
        for event in events:
            time_us = (event.event_time - EPOCH) // _ONE_US  # events are timezone-aware
            mark = self.watermark_us
            if mark is not None and time_us <= mark:
                if time_us < mark - lateness_us:
                    refused.append(self._late(event, mark - time_us))
                    continue
            else:
                self.watermark_us = time_us
            handler = handlers.get(type(event))
            if handler is not None:
                handler(self, event, time_us)
            applied += 1
        self.counts.applied += applied
        return refused

    def advance(self, now: datetime) -> None:
        """Move the watermark to ``now`` (no event before it is still to come, except
        within the lateness), expire windows and write what changed."""
        self._expire(to_epoch_us(now))
        self._flush()

    def idle(self, now: datetime) -> bool:
        """No event is arriving from a live source: let the watermark follow the clock,
        the allowed lateness behind ``now`` (an event up to the lateness late, as seen
        from ``now``, still applies), so windows expire and readers do not take the
        pipeline for stalled. Does nothing before the first event, or when the
        watermark is already there. True when it moved (and changes were written)."""
        target_us = to_epoch_us(now) - self.lateness_us
        if self.watermark_us is None or target_us <= self.watermark_us:
            return False
        self._expire(target_us)
        self._flush()
        return True

    def _late(self, event: AnyEvent, behind_us: int) -> Refused:
        self.counts.late += 1
        reason = (
            f"{behind_us / _US:.1f} s behind the watermark (allowed {self.lateness_us / _US:g} s)"
        )
        return Refused(event, "event_time", reason)

    def _ping(self, event: CourierPing, time_us: int) -> None:
        if self.owns is not None and not self.owns(CELL_KIND, CELL_KIND):
            return
        idle = event.status == "idle"
        self._dirty_cells |= self._couriers.ping(
            event.courier_id, event.lat, event.lon, idle, time_us
        )

    def _created(self, event: OrderCreated, time_us: int) -> None:
        if event.order_id in self._orders:
            self.counts.duplicates += 1
            return
        keys = order_keys(event, self._local_day(event.event_time, time_us))
        if self.owns is not None:
            keys = {k: v for k, v in keys.items() if self.owns(k, v)}
        self._orders[event.order_id] = OrderState(time_us, keys)
        self._observe("created", keys, time_us, UNIT)
        self._observe("open", keys, time_us, UNIT)

    def _local_day(self, when: datetime, time_us: int) -> str:
        """The local date of ``when``, cached per 15 minutes (offsets are multiples of it)."""
        bucket = time_us // _DAY_BUCKET_US
        day = self._days.get(bucket)
        if day is None:
            if len(self._days) > 4096:
                self._days.clear()
            day = self._days[bucket] = when.astimezone(self.zone).date().isoformat()
        return day

    def _order(self, order_id: str) -> OrderState | None:
        order = self._orders.get(order_id)
        if order is None:
            self.counts.unmatched += 1
        return order

    def _confirmed(self, event: OrderConfirmed, time_us: int) -> None:
        order = self._order(event.order_id)
        if order is not None and order.confirmed_us is None:
            order.confirmed_us = time_us

    def _ready(self, event: FoodReady, time_us: int) -> None:
        order = self._order(event.order_id)
        if order is not None and not order.ready:
            order.ready = True
            start = order.confirmed_us if order.confirmed_us is not None else order.created_us
            self._observe("prep", order.keys, time_us, time_us - start)

    def _delivered(self, event: Delivered, time_us: int) -> None:
        order = self._order(event.order_id)
        if order is not None:
            if not order.delivered:
                order.delivered = True
                self._observe("delivery", order.keys, time_us, time_us - order.created_us)
            self._finish(order, event.order_id, time_us)

    def _cancelled(self, event: Cancelled, time_us: int) -> None:
        order = self._order(event.order_id)
        if order is not None:
            self._finish(order, event.order_id, time_us)

    def _finish(self, order: OrderState, order_id: str, time_us: int) -> None:
        if not order.finished:
            order.finished = True
            self._observe("open", order.keys, time_us, -UNIT)
            self._finished.append((time_us, order_id))

    def _observe(self, stream: str, keys: dict[str, str], time_us: int, value: int) -> None:
        """Count an observation (``value`` in millionths) for every key it is made under."""
        for family in self._streams.get(stream, ()):
            entity_id = keys.get(family.key)
            if entity_id is None:
                continue
            by_id = self._tracked[family.index]
            series = by_id.get(entity_id)
            if series is None:
                series = by_id[entity_id] = _Tracked(family, entity_id)
            moved = series.add(time_us, value)
            if moved:
                self._schedule(series, min(when for _, when in moved))
            self._dirty[series] = family.all_slots

    def _schedule(self, series: _Tracked, when: int | None) -> None:
        """Have ``series`` expired at ``when`` if that is earlier than already planned."""
        if when is not None and (series.scheduled is None or when < series.scheduled):
            series.scheduled = when
            heapq.heappush(self._due, (when, next(self._tie), series))

    def _observed(
        self, event: WeatherObservation | MarketSnapshot | TravelTimeObservation, time_us: int
    ) -> None:
        for part in LATEST:
            if EVENT_TYPES[part.event_type] is not type(event):
                continue
            entity_id = getattr(event, part.key)
            if entity_id is None:  # e.g. a leg asked for no order
                continue
            if self.owns is not None and not self.owns(part.key, str(entity_id)):
                continue
            values = {name: _scalar(getattr(event, f)) for f, name in part.columns.items()}
            if part.derive:
                values |= part.derive(values)
            key = (part.entity, str(entity_id))
            self._pending.append((key, {n: FeatureValue(v, time_us) for n, v in values.items()}))

    # -- time ------------------------------------------------------------

    def _expire(self, now_us: int) -> None:
        """Advance the watermark to ``now_us`` (if later) and drop observations that left
        their window (an observation at ``o`` counts at ``t`` while ``o + length >= t``).
        Also catches late observations that arrived already outside a window."""
        if self.watermark_us is None or now_us > self.watermark_us:
            self.watermark_us = now_us
        mark = self.watermark_us
        due, dirty = self._due, self._dirty
        while due and due[0][0] < mark:
            when, _, series = heapq.heappop(due)
            if series.scheduled != when:
                continue  # superseded by an earlier entry, already handled
            series.scheduled = None
            changed = series.expire_all(mark)
            if changed:
                dirty[series] = dirty.get(series, 0) | changed
            self._schedule(series, series.next_due())
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
        new = tuple.__new__
        for series, mask in self._dirty.items():
            row = rows.get(series.key)
            if row is None:
                row = rows[series.key] = {}
            for bit, w, stats, names in series.family.slots:
                if mask & bit:
                    values = series.stats(w, stats)
                    for name, value in zip(names, values, strict=True):
                        row[name] = new(FeatureValue, (value, mark))
        for cell in self._dirty_cells:
            rows[(CELL_KIND, cell)] = {"idle": FeatureValue(self._couriers.packed(cell), mark)}
        latest = [(key, checked_row(key, row)) for key, row in self._pending]
        batch = [*rows.items(), *latest]  # the watermark first: see restore
        # Built valid here, except a stamp out of range: let the store refuse that.
        self.store.put_many(ValidRows(batch) if abs(mark) <= MAX_ABS_EVENT_TIME_US else batch)
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
            "series": [
                [index, entity_id, series.to_state()]
                for index, by_id in enumerate(self._tracked)
                for entity_id, series in by_id.items()
            ],
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
            raise ConfigError(
                "checkpoint: written by other feature definitions or another version; delete it"
            )
        self.watermark_us = state["watermark_us"]
        self._orders = {k: OrderState(*v) for k, v in state["orders"].items()}
        self._finished = deque((t, o) for t, o in state["finished"])
        self._tracked = [{} for _ in self._families]
        for index, entity_id, snapshot in state["series"]:
            series = _Tracked(self._families[index], entity_id)
            series.load(tuple(snapshot))
            self._tracked[index][entity_id] = series
        self._due = []
        for by_id in self._tracked:
            for series in by_id.values():
                self._schedule(series, series.next_due())
        heapq.heapify(self._due)
        self._couriers = CourierCells.from_state(state["couriers"])
        self.supersede_stored()

    def supersede_stored(self) -> None:
        """Stamp every later write after anything already in the store: a run killed
        after the state this engine starts from (a checkpoint, or nothing) may have
        written values of a later state with later stamps, which a replay would not
        overwrite otherwise (a stamp grows by one per flush while the watermark stands
        still, so two runs cut into different batches stamp the same value apart).
        The watermark row is written first in every batch, so its stamp bounds them."""
        last = (self.store.get_many([PIPELINE_KEY])[0] or {}).get("watermark")
        if last is not None:
            self._stamp_us = max(self._stamp_us, last.event_time_us + 1)


_HANDLERS: dict[type, Callable[[OnlineEngine, Any, int], None]] = {
    OrderCreated: OnlineEngine._created,
    CourierPing: OnlineEngine._ping,
    WeatherObservation: OnlineEngine._observed,
    MarketSnapshot: OnlineEngine._observed,
    TravelTimeObservation: OnlineEngine._observed,
    OrderConfirmed: OnlineEngine._confirmed,
    FoodReady: OnlineEngine._ready,
    Delivered: OnlineEngine._delivered,
    Cancelled: OnlineEngine._cancelled,
}
"""What each event type changes; other events change no online feature."""


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one batch. A batch allocates thousands
    of objects that join the engine's long-lived, acyclic state (or are freed by
    reference counting); collection passes in the middle of it would only walk that
    state again and again (a quarter of the time of a batch). It runs after."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _length_us(length: Any) -> int | None:
    return None if length is None else int(length.total_seconds() * _US)


def _scalar(value: object) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return str(value)
