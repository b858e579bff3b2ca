"""The features of orders at a time, assembled from one online-store round trip.

Request-time features (the order itself, calendar, travel estimate) come from the
order; trailing aggregates, latest observations and courier proximity come from
the rows the ingest engine keeps. The IO-free parts (:meth:`OnlineFeatures.plan`,
:meth:`OnlineFeatures.requested` and :meth:`OnlineFeatures.features`) let a sync or
async caller do the one ``get_many`` itself under its own deadline, and work out
what the orders themselves give while the store answers.

Freshness: a latest observation older than its feature's TTL is served as unknown
and named stale; aggregates the engine maintains are stale when its watermark is
more than ``max_lag_s`` behind the read time (a stalled pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from arrive.features import calendar, courier, order, travel
from arrive.features.online.parts import (
    CELL_KIND,
    PIPELINE_KEY,
    latest_columns,
    trailing_columns,
)
from arrive.features.spec import FeatureScalar
from arrive.schema.events import OrderCreated
from arrive.store.base import EntityKey, FeatureRow, OnlineStore, to_epoch_us

_PROXIMITY = ("idle_couriers_near", "nearest_idle_courier_km")
_CALENDAR = frozenset(spec.name for spec in calendar.SPECS)  # one value per read
_TRAVEL = travel.SPECS[0].name
_DISTANCE = "distance_km"
# where a request-time feature comes from (after the order's attributes, which win
# over its fields and distance but not over the calendar or the travel estimate)
_FROM_TRAVEL, _FROM_DISTANCE, _FROM_FIELD, _FROM_ATTRIBUTE = 0, 1, 2, 3
_EMPTY_STATS = {"count": 0.0, "sum": 0.0}
_ORDER_IDS = ("order_id", "store_id", "market_id", "courier_id")
_EMPTY: FeatureRow = {}
_ABSENT: Any = object()
# how each feature of a plan is served (``_Slot.how``)
_TRAILING, _LATEST, _OTHER = 0, 1, 2


class OrderFeatures(NamedTuple):
    """One order's features.

    Attributes:
        values: every feature asked for, in the order asked; None when unknown.
        stale: features whose stored value was too old (served as None).
        missing: features with no stored value at all (served as None).
    """

    values: dict[str, FeatureScalar]
    stale: tuple[str, ...]
    missing: tuple[str, ...]


class Requested(NamedTuple):
    """What one order gives itself, before its stored features are read
    (:meth:`OnlineFeatures.requested`; each is used by one :meth:`~OnlineFeatures.features`).

    Attributes:
        out: the model's features in its order, those the request gives filled in.
        missing: the model's request-time features the request lacks.
        clash: stored features the request gives too (its value wins).
        values: every value the request gives when there is a clash (else empty).
    """

    out: dict[str, FeatureScalar]
    missing: list[str]
    clash: frozenset[str]
    values: dict[str, FeatureScalar]


class ReadPlan(NamedTuple):
    """One read of :meth:`OnlineFeatures.plan`: the keys to fetch, and where each
    order's entities are among them (so the rows are matched without re-keying).

    Attributes:
        keys: every entity to read, without duplicates (the engine's first).
        rows: per order, the index in ``keys`` of each keyed entity of the plan
            (-1 when the order lacks the id), then of its proximity cells.
        local: the read time in the marketplace's zone.
        at_us: the read time in epoch µs.
    """

    keys: list[EntityKey]
    rows: list[tuple[int, ...]]
    local: datetime
    at_us: int


class _Slot(NamedTuple):
    name: str
    how: int  # _TRAILING, _LATEST or _OTHER
    entity: int  # index into the plan's keyed entities (-1: none)
    empty: float | None  # trailing: the value of an empty window
    ttl_us: int  # latest: the TTL


class OnlineFeatures:
    """Reads the features a model needs.

    Everything that depends only on the model (which entities, which column of
    which row, the TTLs) is worked out once here; a read then costs one pass over
    the orders to key them and one pass over the features of each.

    Args:
        names: the features, in the model's order.
        ttl_s: TTL of each feature that has one (latest observations).
        local_timezone: the marketplace's IANA zone.
        max_lag_s: how far the engine's watermark may trail the read time before
            the aggregates it maintains count as stale.
    """

    def __init__(
        self,
        names: Sequence[str],
        ttl_s: Mapping[str, float | None],
        local_timezone: str = "UTC",
        max_lag_s: float = 300.0,
    ) -> None:
        self.names = tuple(names)
        self.zone = ZoneInfo(local_timezone)
        self.max_lag_us = int(max_lag_s * 1e6)
        ttl_us = {n: int(t * 1e6) for n, t in ttl_s.items() if t is not None}
        trailing = trailing_columns()
        latest = latest_columns()
        entities: dict[tuple[str, str], int] = {}  # (entity kind, order id field) → index
        slots = []
        for name in self.names:
            if name in trailing:
                part, stat = trailing[name]
                at = entities.setdefault((part.entity, part.key), len(entities))
                slots.append(_Slot(name, _TRAILING, at, _EMPTY_STATS.get(stat), 0))
            elif name in latest:
                family = latest[name]
                at = entities.setdefault((family.entity, family.key), len(entities))
                slots.append(_Slot(name, _LATEST, at, None, ttl_us.get(name, 2**62)))
            else:
                slots.append(_Slot(name, _OTHER, -1, None, 0))
        self._entities = tuple(entities)
        self._proximity = any(n in self.names for n in _PROXIMITY)
        # the slots by how they are served, so a read loops over each kind without branching
        near = _PROXIMITY if self._proximity else ()  # from the rows, not the request
        self._other = tuple(s.name for s in slots if s.how == _OTHER and s.name not in near)
        self._calendar = tuple(name for name in self._other if name in _CALENDAR)
        self._own = tuple((name, _source(name)) for name in self._other if name not in _CALENDAR)
        self._trailing_names = tuple(s.name for s in slots if s.how == _TRAILING)
        by_entity: dict[int, list[tuple[str, float | None]]] = {}
        for s in slots:
            if s.how == _TRAILING:
                by_entity.setdefault(s.entity, []).append((s.name, s.empty))
        self._trailing = tuple((at, tuple(pairs)) for at, pairs in by_entity.items())
        self._latest = tuple((s.name, s.entity, s.ttl_us) for s in slots if s.how == _LATEST)
        self._stored = frozenset(s.name for s in slots if s.how != _OTHER)
        always = {*_CALENDAR, _TRAVEL, _DISTANCE, *order.ONLINE_FIELDS}  # given by any order
        self._always_clash = self._stored.intersection(always)
        self._template: dict[str, FeatureScalar] = dict.fromkeys(self.names)

    @classmethod
    def from_schema(cls, schema: Mapping[str, Any], max_lag_s: float = 300.0) -> OnlineFeatures:
        """The reader of a model bundle's feature schema (``ModelBundle.features``)."""
        specs = schema["features"]
        return cls(
            [s["name"] for s in specs],
            {s["name"]: s["ttl_s"] for s in specs},
            str(schema.get("local_timezone") or "UTC"),
            max_lag_s,
        )

    def plan(self, orders: Sequence[OrderCreated], at: datetime) -> ReadPlan:
        """The keys the features of ``orders`` at ``at`` need, and where each order's are."""
        local = at.astimezone(self.zone)
        day = local.date().isoformat()
        index: dict[EntityKey, int] = {PIPELINE_KEY: 0}
        per_order = []
        for item in orders:
            found = [
                -1 if entity_id is None else index.setdefault((kind, entity_id), len(index))
                for kind, entity_id in self._ids(item, day)
            ]
            if self._proximity and item.pickup_lat is not None and item.pickup_lon is not None:
                for cell in courier.cells_around(item.pickup_lat, item.pickup_lon):
                    found.append(index.setdefault((CELL_KIND, cell), len(index)))
            per_order.append(tuple(found))
        return ReadPlan(list(index), per_order, local, to_epoch_us(at))

    def requested(self, orders: Sequence[OrderCreated], plan: ReadPlan) -> list[Requested]:
        """What ``orders`` give themselves at ``plan``'s time: no rows needed, so a caller
        can work this out while the store answers."""
        when = calendar.online(orders[0], plan.local) if orders else {}  # the read time's
        base = self._template.copy()
        for name in self._calendar:
            base[name] = when[name]
        hour = plan.local.hour
        return [self._requested(item, base, when, hour) for item in orders]

    def features(
        self,
        orders: Sequence[OrderCreated],
        plan: ReadPlan,
        rows: Sequence[FeatureRow | None],
        requested: Sequence[Requested] | None = None,
    ) -> list[OrderFeatures]:
        """The features of ``orders`` from ``rows`` read for ``plan.keys`` (and
        ``requested``, from :meth:`requested`, when the caller has it already)."""
        if len(rows) != len(plan.keys):
            raise ValueError(f"{len(plan.keys)} keys planned but {len(rows)} rows read")
        mark_us = watermark_us(rows)
        lagging = mark_us is None or plan.at_us - mark_us > self.max_lag_us
        if requested is None:
            requested = self.requested(orders, plan)
        return [
            self._one(item, given, plan.at_us, rows, found, lagging)
            for item, given, found in zip(orders, requested, plan.rows, strict=True)
        ]

    def keys(self, orders: Sequence[OrderCreated], at: datetime) -> list[EntityKey]:
        """Every entity the features of ``orders`` at ``at`` need (no duplicates)."""
        return self.plan(orders, at).keys

    def assemble(
        self,
        orders: Sequence[OrderCreated],
        at: datetime,
        rows: Sequence[FeatureRow | None],
    ) -> list[OrderFeatures]:
        """The features of ``orders`` at ``at`` from ``rows`` read for :meth:`keys`."""
        return self.features(orders, self.plan(orders, at), rows)

    def read(
        self, store: OnlineStore, orders: Sequence[OrderCreated], at: datetime
    ) -> list[OrderFeatures]:
        """:meth:`plan`, one ``store.get_many``, :meth:`features`."""
        plan = self.plan(orders, at)
        return self.features(orders, plan, store.get_many(plan.keys))

    def _ids(self, item: OrderCreated, day: str) -> list[tuple[str, str | None]]:
        """``(entity kind, id or None)`` of each keyed entity of the plan for ``item``."""
        out: list[tuple[str, str | None]] = []
        for kind, field in self._entities:
            if field == "day":
                out.append((kind, day))
            elif field == "market_day":
                market = item.market_id
                out.append((kind, None if market is None else f"{market}|{day}"))
            elif field in _ORDER_IDS:
                out.append((kind, getattr(item, field)))
            else:
                out.append((kind, None))
        return out

    def _requested(
        self,
        item: OrderCreated,
        base: dict[str, FeatureScalar],
        when: Mapping[str, FeatureScalar],
        hour: int,
    ) -> Requested:
        attributes = item.attributes
        given = attributes.get
        number = order.NUMBER
        distance = travel.order_distance_km(item)
        out = base.copy()  # every feature in the model's order, the calendar's filled in
        missing: list[str] = []
        for name, source in self._own:
            if source == _FROM_TRAVEL:
                out[name] = travel.estimate_s(distance, hour)
                continue
            raw = given(name, _ABSENT)
            if raw is _ABSENT:
                if source == _FROM_DISTANCE:
                    out[name] = distance
                    continue
                if source != _FROM_FIELD:
                    missing.append(name)
                    continue
                raw = getattr(item, name)
            out[name] = float(raw) if isinstance(raw, number) else raw
        clash = self._stored.intersection(attributes)
        if self._always_clash:
            clash |= self._always_clash
        if not clash:
            return Requested(out, missing, clash, {})
        values = order.online(item, distance)  # rare: the request's values, as it gives them
        values.update(when)
        values[_TRAVEL] = travel.estimate_s(distance, hour)
        return Requested(out, missing, clash, values)

    def _one(
        self,
        item: OrderCreated,
        given: Requested,
        at_us: int,
        rows: Sequence[FeatureRow | None],
        found: tuple[int, ...],
        lagging: bool,
    ) -> OrderFeatures:
        out, missing = given.out, given.missing
        keyed = len(self._entities)
        if self._proximity:
            out.update(self._near(item, at_us, [rows[i] for i in found[keyed:]]))
        entity_rows = [(rows[i] or _EMPTY) if i >= 0 else _EMPTY for i in found[:keyed]]
        stale: list[str] = []
        if lagging:
            stale.extend(self._trailing_names)
        else:
            for entity, slots in self._trailing:
                if found[entity] < 0:  # the order names no such entity: unknown, as offline
                    continue
                get = entity_rows[entity].get
                for name, empty in slots:
                    stored = get(name)
                    out[name] = empty if stored is None else stored[0]
        for name, entity, ttl_us in self._latest:
            stored = entity_rows[entity].get(name)
            if stored is None:
                missing.append(name)
            elif at_us - stored[1] > ttl_us:
                stale.append(name)
            else:
                out[name] = stored[0]
        clash = given.clash
        if clash:  # a value the request gives wins over the stored one
            out.update((name, given.values[name]) for name in clash)
            stale = [name for name in stale if name not in clash]
            missing = [name for name in missing if name not in clash]
        return OrderFeatures(out, tuple(stale), tuple(missing))

    def _near(
        self, item: OrderCreated, at_us: int, cells: list[FeatureRow | None]
    ) -> dict[str, FeatureScalar]:
        if item.pickup_lat is None or item.pickup_lon is None:
            return dict.fromkeys(_PROXIMITY)
        packed: list[str | None] = []
        for row in cells:
            stored = (row or _EMPTY).get("idle")
            packed.append(stored.value if stored and isinstance(stored.value, str) else None)
        near, nearest = courier.proximity_online(item.pickup_lat, item.pickup_lon, at_us, packed)
        return {"idle_couriers_near": near, "nearest_idle_courier_km": nearest}


def watermark_us(rows: Sequence[FeatureRow | None]) -> float | None:
    """The ingest engine's watermark (epoch µs) in ``rows`` read for a plan (its first key
    is the engine's), or None when the engine has written none."""
    mark = (rows[0] or _EMPTY).get("watermark") if rows else None
    return mark.value if mark is not None and isinstance(mark.value, float) else None


def _source(name: str) -> int:
    """Where the request-time feature ``name`` comes from when no attribute gives it."""
    if name == _TRAVEL:
        return _FROM_TRAVEL
    if name == _DISTANCE:
        return _FROM_DISTANCE
    if name in order.ONLINE_FIELDS:
        return _FROM_FIELD
    return _FROM_ATTRIBUTE
