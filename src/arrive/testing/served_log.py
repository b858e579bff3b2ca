"""A service replayed over a data directory's event log, logging the features it served
(for the skew tests of the monitor and of the Prometheus integration): the online path
as the service reads it, with seams to break it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from arrive import datadir
from arrive.clock import ManualClock
from arrive.features import BuildContext, build_features
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.reader import OnlineFeatures, OrderFeatures
from arrive.features.online.replay import created_events, replay_until
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.store.base import EntityKey, FeatureRow, OnlineStore
from arrive.store.memory import InMemoryStore
from arrive.testing.factories import order_spine

ZONE = "Europe/Berlin"


class ShiftedHour(OnlineFeatures):
    """The service's reader with its local hour one hour ahead (a time-zone bug)."""

    def features(self, *args: Any, **kwargs: Any) -> list[OrderFeatures]:
        found = super().features(*args, **kwargs)
        for one in found:
            hour = one.values["hour_local"]
            assert isinstance(hour, float)
            one.values["hour_local"] = hour + 1.0
        return found


class DoublingStore:
    """A store whose writes of one maintained aggregate are doubled (an engine bug)."""

    def __init__(self, inner: OnlineStore, name: str) -> None:
        self.inner = inner
        self.name = name

    def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        self.inner.put_many([(key, self._broken(row)) for key, row in rows])

    def _broken(self, row: FeatureRow) -> FeatureRow:
        found = row.get(self.name)
        if found is None or not isinstance(found.value, float):
            return row
        return {**row, self.name: found._replace(value=found.value * 2 + 1)}

    def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        return self.inner.get_many(keys)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()


def serve_and_log(
    data_dir: Path,
    log_dir: Path,
    reader_class: type[OnlineFeatures] = OnlineFeatures,
    wrap_store: Callable[[OnlineStore], OnlineStore] = lambda s: s,
) -> pl.DataFrame:
    """Replay the event log through the online path as the service reads it, answer every
    order at its creation time and log the features served; the log as read back."""
    events = datadir.scan_events(data_dir)
    log = events.sort("event_time", "event_id", maintain_order=True).collect()
    spine = order_spine(log)
    features = build_features(BuildContext(spine, events, ZONE))  # the model's feature set
    reader = reader_class(features.names, {s.name: s.ttl_s for s in features.specs}, ZONE)
    store = wrap_store(InMemoryStore())
    engine = OnlineEngine(store, local_timezone=ZONE)
    clock = ManualClock(datetime.fromisoformat("2030-01-01T00:00:00+00:00"))
    prediction_log = PredictionLog(log_dir, clock)
    created = created_events(log, spine.get_column("order_id"))
    for order in replay_until(log, created.values(), engine):
        (served,) = reader.read(store, [order], order.event_time)
        prediction_log.extend(_answer(order.order_id, order.event_time, served.values))
    prediction_log.flush()
    prediction_log.close()
    return pl.read_parquet(prediction_log.files())


def _answer(order_id: str, time: datetime, values: dict[str, Any]) -> Predictions:
    return Predictions(
        [f"r-{order_id}"], [order_id], time, ["production"], ["1"], [values], [1.0], [2.0], [None]
    )
