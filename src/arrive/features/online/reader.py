"""The features of orders at a time, assembled from one online-store round trip.

Request-time features (the order itself, calendar, travel estimate) come from the
order; trailing aggregates, latest observations and courier proximity come from
the rows the ingest engine keeps. The IO-free halves (:meth:`OnlineFeatures.keys`
and :meth:`OnlineFeatures.assemble`) let a sync or async caller do the one
``get_many`` itself under its own deadline.

Freshness: a latest observation older than its feature's TTL is served as unknown
and named stale; aggregates the engine maintains are stale when its watermark is
more than ``max_lag_s`` behind the read time (a stalled pipeline).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from arrive.features import calendar, courier, order, travel
from arrive.features.online.parts import (
    CELL_KIND,
    PIPELINE_KEY,
    latest_columns,
    order_keys,
    trailing_columns,
)
from arrive.features.spec import FeatureScalar
from arrive.schema.events import OrderCreated
from arrive.store.base import EntityKey, FeatureRow, OnlineStore, to_epoch_us

_REQUEST: tuple[Callable[[OrderCreated, datetime], dict[str, FeatureScalar]], ...] = (
    order.online,
    calendar.online,
    travel.online,
)
_PROXIMITY = ("idle_couriers_near", "nearest_idle_courier_km")
_EMPTY_STATS = {"count": 0.0, "sum": 0.0}


class OrderFeatures(NamedTuple):
    """One order's features.

    Attributes:
        values: every feature asked for; None when unknown.
        stale: features whose stored value was too old (served as None).
        missing: features with no stored value at all (served as None).
    """

    values: dict[str, FeatureScalar]
    stale: tuple[str, ...]
    missing: tuple[str, ...]


class OnlineFeatures:
    """Reads the features a model needs.

    Args:
        names: the features, in the model's order.
        ttl_s: TTL of each feature that has one (latest observations).
        local_timezone: the marketplace's IANA zone.
        max_lag_s: how far the engine's watermark may trail the read time before
            the aggregates it maintains count as stale.

    Raises:
        ConfigError: a feature this reader cannot compute online.
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
        self._ttl_us = {n: int(t * 1e6) for n, t in ttl_s.items() if t is not None}
        self._trailing = {n: v for n, v in trailing_columns().items() if n in self.names}
        self._latest = {n: p for n, p in latest_columns().items() if n in self.names}
        self._proximity = any(n in self.names for n in _PROXIMITY)

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

    def keys(self, orders: Sequence[OrderCreated], at: datetime) -> list[EntityKey]:
        """Every entity the features of ``orders`` at ``at`` need (no duplicates)."""
        keys: dict[EntityKey, None] = {PIPELINE_KEY: None}
        day = at.astimezone(self.zone).date().isoformat()
        for item in orders:
            ids = order_keys(item, day)
            for part, _ in self._trailing.values():
                if part.key in ids:
                    keys[(part.entity, ids[part.key])] = None
            for latest in self._latest.values():
                if latest.key in ids:
                    keys[(latest.entity, ids[latest.key])] = None
            if self._proximity and item.pickup_lat is not None and item.pickup_lon is not None:
                for cell in courier.cells_around(item.pickup_lat, item.pickup_lon):
                    keys[(CELL_KIND, cell)] = None
        return list(keys)

    def assemble(
        self,
        orders: Sequence[OrderCreated],
        at: datetime,
        rows: Sequence[FeatureRow | None],
    ) -> list[OrderFeatures]:
        """The features of ``orders`` at ``at`` from ``rows`` read for :meth:`keys`."""
        by_key = dict(zip(self.keys(orders, at), rows, strict=True))
        at_us = to_epoch_us(at)
        pipeline = by_key.get(PIPELINE_KEY) or {}
        mark = pipeline.get("watermark")
        mark_us = mark.value if mark is not None and isinstance(mark.value, float) else None
        lagging = mark_us is None or at_us - mark_us > self.max_lag_us
        return [self._one(item, at, at_us, by_key, lagging) for item in orders]

    def read(
        self, store: OnlineStore, orders: Sequence[OrderCreated], at: datetime
    ) -> list[OrderFeatures]:
        """:meth:`keys`, one ``store.get_many``, :meth:`assemble`."""
        return self.assemble(orders, at, store.get_many(self.keys(orders, at)))

    def _one(
        self,
        item: OrderCreated,
        at: datetime,
        at_us: int,
        by_key: Mapping[EntityKey, FeatureRow | None],
        lagging: bool,
    ) -> OrderFeatures:
        local = at.astimezone(self.zone)
        values: dict[str, FeatureScalar] = {}
        for compute in _REQUEST:
            values |= compute(item, local)
        stale: list[str] = []
        missing: list[str] = []
        ids = order_keys(item, local.date().isoformat())
        if self._proximity:
            values |= self._near(item, at_us, by_key)
        out: dict[str, FeatureScalar] = {}
        for name in self.names:
            if name in values:
                out[name] = values[name]
            elif name in self._trailing:
                part, stat = self._trailing[name]
                row = by_key.get((part.entity, ids.get(part.key, ""))) or {}
                out[name] = _maintained(name, row, _EMPTY_STATS.get(stat), lagging, stale)
            elif name in self._latest:
                latest = self._latest[name]
                row = by_key.get((latest.entity, ids.get(latest.key, ""))) or {}
                out[name] = self._observed(name, row, at_us, stale, missing)
            else:
                out[name] = None
                missing.append(name)
        return OrderFeatures(out, tuple(stale), tuple(missing))

    def _observed(
        self, name: str, row: FeatureRow, at_us: int, stale: list[str], missing: list[str]
    ) -> FeatureScalar:
        stored = row.get(name)
        if stored is None:
            missing.append(name)
            return None
        if at_us - stored.event_time_us > self._ttl_us.get(name, 2**62):
            stale.append(name)
            return None
        return stored.value

    def _near(
        self, item: OrderCreated, at_us: int, by_key: Mapping[EntityKey, FeatureRow | None]
    ) -> dict[str, FeatureScalar]:
        if item.pickup_lat is None or item.pickup_lon is None:
            return dict.fromkeys(_PROXIMITY)
        packed: list[str | None] = []
        for cell in courier.cells_around(item.pickup_lat, item.pickup_lon):
            stored = (by_key.get((CELL_KIND, cell)) or {}).get("idle")
            packed.append(stored.value if stored and isinstance(stored.value, str) else None)
        near, nearest = courier.proximity_online(item.pickup_lat, item.pickup_lon, at_us, packed)
        return {"idle_couriers_near": near, "nearest_idle_courier_km": nearest}


def _maintained(
    name: str, row: FeatureRow, empty: float | None, lagging: bool, stale: list[str]
) -> FeatureScalar:
    if lagging:
        stale.append(name)
        return None
    stored = row.get(name)
    return empty if stored is None else stored.value
