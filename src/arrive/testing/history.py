"""Hand-made event histories, featurised both ways, for per-group feature tests.

A :class:`History` collects canonical events written one by one (an order's
lifecycle at chosen times, courier pings, weather observations, market
snapshots). :func:`features_both_ways` computes the features of its orders
offline (the Polars builder, as of each order's creation) and online (the ingest
engine replaying the same events in event time, read at each order's creation),
and :meth:`BothWays.expect` checks both against values worked out by hand::

    history = History()
    history.order("a", at(minutes=-40), delivered=at(minutes=-20))
    history.order("q", at())
    features_both_ways(history)["q"].expect({"store_delivery_mean_1h": 1200.0})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from arrive.features.offline import build_features
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.parts import latest_columns
from arrive.features.online.reader import OnlineFeatures
from arrive.features.online.replay import created_events, replay_until
from arrive.features.spec import BuildContext, FeatureScalar
from arrive.geo import EARTH_RADIUS_KM
from arrive.schema.events import (
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
from arrive.schema.frame import events_to_frame
from arrive.store.memory import InMemoryStore
from arrive.testing.factories import order_spine

T = datetime(2025, 3, 3, 12, tzinfo=UTC)
"""The reference instant of a history (a Monday, 12:00 UTC)."""
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180.0
"""Great-circle km per degree of latitude: a point ``d / KM_PER_DEGREE`` degrees due
north is ``d`` km away."""


def at(seconds: float = 0.0, *, minutes: float = 0.0, hours: float = 0.0) -> datetime:
    """:data:`T` shifted by the given amounts (negative: before it)."""
    return T + timedelta(seconds=seconds, minutes=minutes, hours=hours)


def north(lat: float, km: float) -> float:
    """The latitude ``km`` due north of ``lat``."""
    return lat + km / KM_PER_DEGREE


@dataclass
class History:
    """Events written by hand, in any order (the builders sort them by time)."""

    events: list[AnyEvent] = field(default_factory=list)

    def order(
        self,
        order_id: str,
        created: datetime,
        *,
        confirmed: datetime | None = None,
        ready: datetime | None = None,
        delivered: datetime | None = None,
        cancelled: datetime | None = None,
        **fields: Any,
    ) -> None:
        """An order created at ``created`` (store ``s1``, market ``m1`` unless ``fields``
        say otherwise) and the lifecycle steps given."""
        fields = {"store_id": "s1", "market_id": "m1", **fields}
        self.add(
            OrderCreated(event_id=f"{order_id}:c", event_time=created, order_id=order_id, **fields)
        )
        steps: list[tuple[type[Any], datetime | None]] = [
            (OrderConfirmed, confirmed),
            (FoodReady, ready),
            (Delivered, delivered),
        ]
        for kind, when in steps:
            if when is not None:
                event_id = f"{order_id}:{kind.__name__}"
                self.add(kind(event_id=event_id, event_time=when, order_id=order_id))
        if cancelled is not None:
            self.add(
                Cancelled(
                    event_id=f"{order_id}:x", event_time=cancelled, order_id=order_id, reason="r"
                )
            )

    def ping(self, courier_id: str, when: datetime, lat: float, lon: float, status: str) -> None:
        """A courier's position and status (``idle``, ``busy`` or ``offline``)."""
        event_id = f"{courier_id}@{when.isoformat()}"
        self.add(
            CourierPing(
                event_id=event_id,
                event_time=when,
                courier_id=courier_id,
                lat=lat,
                lon=lon,
                status=status,  # type: ignore[arg-type]
            )
        )

    def weather(
        self,
        market_id: str,
        when: datetime,
        condition: str,
        temperature_c: float | None = None,
        precipitation_mm: float | None = None,
    ) -> None:
        """A weather observation in ``market_id``."""
        self.add(
            WeatherObservation(
                event_id=f"w-{market_id}@{when.isoformat()}",
                event_time=when,
                market_id=market_id,
                condition=condition,
                temperature_c=temperature_c,
                precipitation_mm=precipitation_mm,
            )
        )

    def snapshot(
        self, market_id: str, when: datetime, on_shift: int, busy: int, outstanding: int
    ) -> None:
        """A market snapshot: couriers on shift, couriers busy, outstanding orders."""
        self.add(
            MarketSnapshot(
                event_id=f"m-{market_id}@{when.isoformat()}",
                event_time=when,
                market_id=market_id,
                couriers_on_shift=on_shift,
                couriers_busy=busy,
                outstanding_orders=outstanding,
            )
        )

    def add(self, event: AnyEvent) -> None:
        """Any other canonical event."""
        self.events.append(event)


@dataclass(frozen=True)
class BothWays:
    """One order's features computed offline and online.

    Attributes:
        offline: every feature the builder made for this data (a feature it left
            out is absent).
        online: the features read online (None when unknown).
        left_out: what the builder left out, and why.
    """

    order_id: str
    offline: dict[str, FeatureScalar]
    online: dict[str, FeatureScalar]
    left_out: dict[str, str]

    def expect(self, expected: Mapping[str, FeatureScalar]) -> None:
        """Assert that both paths give each expected value (floats to 1e-9 relative);
        an expected None means the feature is missing: left out, or null, offline."""
        wrong = []
        for name, value in expected.items():
            offline = self.offline.get(name)
            online = self.online.get(name)
            if value is not None and name not in self.offline:
                wrong.append(f"{name}: left out offline ({self.left_out.get(name, 'not built')})")
            for path, got in (("offline", offline), ("online", online)):
                if not _same(got, value):
                    wrong.append(f"{name}: {path} {got!r} != expected {value!r}")
        assert not wrong, f"order {self.order_id}: " + "; ".join(wrong)


def features_both_ways(
    history: History, timezone: str = "UTC", extra: tuple[str, ...] = ()
) -> dict[str, BothWays]:
    """Every order's features, offline and online, as of its creation.

    Online reads the features the builder made, and ``extra`` (features a test
    expects to be left out offline, to check the online side of them too).
    """
    log = events_to_frame(history.events)
    spine = order_spine(log)
    built = build_features(BuildContext(spine, log.lazy(), timezone))
    names = [*built.names, *(n for n in extra if n not in built.names)]
    ttl: dict[str, float | None] = {n: p.ttl.total_seconds() for n, p in latest_columns().items()}
    ttl.update({s.name: s.ttl_s for s in built.specs})
    reader = OnlineFeatures(names, ttl, timezone)
    engine = OnlineEngine(InMemoryStore(), local_timezone=timezone)
    created = created_events(log, spine.get_column("order_id"))
    online = {
        query.order_id: reader.read(engine.store, [query], query.event_time)[0].values
        for query in replay_until(log, created.values(), engine)
    }
    return {
        row["order_id"]: BothWays(row["order_id"], row, online[row["order_id"]], built.left_out)
        for row in built.frame.iter_rows(named=True)
    }


def _same(got: object, expected: FeatureScalar) -> bool:
    if isinstance(got, float) and math.isnan(got):
        got = None
    if expected is None or got is None:
        return got is None and expected is None
    if isinstance(expected, float) and isinstance(got, int | float) and not isinstance(got, bool):
        return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9)
    return got == expected
