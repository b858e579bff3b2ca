"""The service's freshness metrics over a real Redis store fed by the ingest engine:
``arrive_feature_watermark_lag_seconds`` is the read time minus the engine's watermark, and
``arrive_features_stale_total`` counts the answers served with a stale feature."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from arrive.clock import ManualClock
from arrive.schema.eta import EtaAnswer
from arrive.schema.events import OrderCreated
from arrive.serving.wiring import build_predictor
from arrive.store.base import OnlineStore
from arrive.store.redis import RedisStore, RedisStoreConfig
from arrive.testing.source_contract import unique_name

pytestmark = pytest.mark.redis

Pick = Callable[..., list[OrderCreated]]


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    made = RedisStore(RedisStoreConfig(url=redis_url, key_prefix=unique_name("fresh") + ":"))
    yield made
    made.close()


def _stale_total() -> float:
    return REGISTRY.get_sample_value("arrive_features_stale_total") or 0.0


def _lag() -> float | None:
    return REGISTRY.get_sample_value("arrive_feature_watermark_lag_seconds")


def _ask(
    trained: Any, settings: Any, store: OnlineStore, at: datetime, orders: Sequence[OrderCreated]
) -> list[EtaAnswer]:
    predictor = build_predictor(
        settings, store=store, clock=ManualClock(at), registry=trained.registry()
    )

    async def run() -> list[EtaAnswer]:
        async with predictor:
            return await predictor.predict(orders, [f"r-{o.order_id}" for o in orders])

    return asyncio.run(run())


def test_a_current_pipeline_shows_its_lag_and_no_stale_aggregate(
    trained: Any, settings_for: Any, late_orders: Pick, replay_until: Any, store: RedisStore
) -> None:
    orders = late_orders(3)
    mark = orders[-1].event_time
    replay_until(store, mark)
    before = _stale_total()
    answers = _ask(trained, settings_for(), store, mark + timedelta(seconds=30), orders)
    assert _lag() == 30.0
    assert all(a.fallback is None for a in answers)  # the model answered every order
    assert _stale_total() == before  # nothing stale in this marketplace's read


def test_a_stalled_pipeline_makes_every_answer_stale(
    trained: Any, settings_for: Any, late_orders: Pick, replay_until: Any, store: RedisStore
) -> None:
    orders = late_orders(3)
    mark = orders[-1].event_time
    replay_until(store, mark)
    settings = settings_for()
    behind = timedelta(seconds=settings.max_feature_lag_s + 60)
    before = _stale_total()
    _ask(trained, settings, store, mark + behind, orders)
    assert _lag() == behind.total_seconds()
    assert _stale_total() == before + len(orders)


def test_a_store_no_ingest_ever_wrote_shows_an_infinite_lag(
    trained: Any, settings_for: Any, late_orders: Pick, store: RedisStore
) -> None:
    orders = late_orders(2)
    _ask(trained, settings_for(), store, orders[-1].event_time, orders)
    assert _lag() == float("inf")
