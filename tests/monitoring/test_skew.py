"""Skew in production: the features a service served (its prediction log) recomputed
offline from the event log. A correct online path shows no mismatch; one broken online
feature, injected through a seam of the online path, shows up for that feature only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from arrive import datadir
from arrive.clock import ManualClock
from arrive.errors import DataError
from arrive.features import BuildContext, build_features
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.reader import OnlineFeatures, OrderFeatures
from arrive.features.online.replay import created_events, replay_until
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.monitoring.skew import skew_sample
from arrive.store.base import EntityKey, FeatureRow, OnlineStore
from arrive.store.memory import InMemoryStore
from arrive.testing.factories import order_spine, random_marketplace, write_data_dir

ZONE = "Europe/Berlin"
BROKEN_AGGREGATE = "store_prep_mean_7d"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    market = random_marketplace(7, n_orders=300, days=3)
    return write_data_dir(tmp_path_factory.mktemp("skew") / "data", market, ZONE)


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


def _ratios(found: pl.DataFrame) -> dict[str, float]:
    return {r["feature"]: r["mismatch_ratio"] for r in found.iter_rows(named=True)}


def test_a_correct_online_path_shows_no_skew(data_dir: Path, tmp_path: Path) -> None:
    log = serve_and_log(data_dir, tmp_path / "log")
    found = skew_sample(log, data_dir, sample=120, seed=3)
    assert found.get_column("compared").max() == 120
    assert len(found) > 30
    assert not {n: r for n, r in _ratios(found).items() if r}, found.filter(
        pl.col("mismatched") > 0
    )


def test_the_local_hour_shifted_by_one_shows_for_that_feature_only(
    data_dir: Path, tmp_path: Path
) -> None:
    log = serve_and_log(data_dir, tmp_path / "log", reader_class=ShiftedHour)
    found = skew_sample(log, data_dir, sample=120, seed=3)
    ratios = _ratios(found)
    assert ratios.pop("hour_local") == 1.0
    assert not {n: r for n, r in ratios.items() if r}
    example = found.filter(pl.col("feature") == "hour_local").get_column("example").item()
    assert " != " in example


def test_a_broken_stored_aggregate_shows_for_that_feature_only(
    data_dir: Path, tmp_path: Path
) -> None:
    log = serve_and_log(
        data_dir, tmp_path / "log", wrap_store=lambda s: DoublingStore(s, BROKEN_AGGREGATE)
    )
    found = skew_sample(log, data_dir, sample=200, seed=1)
    ratios = _ratios(found)
    broken = ratios.pop(BROKEN_AGGREGATE)
    assert broken > 0.5  # every order whose store had a prep time in the last 7 days
    assert not {n: r for n, r in ratios.items() if r}


def test_the_sample_is_seeded_and_bounded(data_dir: Path, tmp_path: Path) -> None:
    log = serve_and_log(data_dir, tmp_path / "log", reader_class=ShiftedHour)
    first = skew_sample(log, data_dir, sample=25, seed=9)
    again = skew_sample(log, data_dir, sample=25, seed=9)
    assert first.equals(again)
    assert first.get_column("compared").max() == 25


def test_a_log_of_heuristic_answers_only_is_refused_in_one_line(data_dir: Path) -> None:
    log = pl.DataFrame(
        {"order_id": ["a"], "time": [datetime.fromisoformat("2030-01-01T00:00:00+00:00")]}
    ).with_columns(features=pl.lit(None, pl.String))
    with pytest.raises(DataError, match="no answer in the prediction log carries features"):
        skew_sample(log, data_dir)
