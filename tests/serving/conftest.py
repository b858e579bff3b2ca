"""Events, settings and replays of the session's trained model (``trained``, from
:mod:`arrive.testing.trained`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import polars as pl
import pytest

from arrive.features.online.engine import OnlineEngine
from arrive.features.online.replay import LogReplay, replay_order
from arrive.schema.events import OrderCreated
from arrive.schema.frame import frame_to_events
from arrive.serving.settings import ServeSettings, validated
from arrive.store.base import OnlineStore
from arrive.testing.trained import TIMEZONE, Trained


@pytest.fixture
def created_orders(trained: Trained) -> pl.DataFrame:
    """The order_created events of the trained marketplace, in time order."""
    events = trained.market.events
    return events.filter(pl.col("type") == "order_created").sort("event_time", "event_id")


@pytest.fixture
def late_orders(created_orders: pl.DataFrame) -> Callable[..., list[OrderCreated]]:
    """``n`` order_created events, every ``every``-th from the second half of the
    marketplace (so their stores have history)."""

    def pick(n: int, every: int = 7) -> list[OrderCreated]:
        frame = created_orders[len(created_orders) // 2 :: every].head(n)
        return [e for e in frame_to_events(frame) if isinstance(e, OrderCreated)]

    return pick


@pytest.fixture
def settings_for(trained: Trained) -> Callable[..., ServeSettings]:
    """Settings for tests: LightGBM only, no log, no polling, unless overridden."""

    def make(**overrides: Any) -> ServeSettings:
        values: dict[str, Any] = {
            "compile_backend": "none",
            "compile_cache_dir": trained.compile_cache,
            "prediction_log_dir": None,
            "reload_interval_s": 0.0,
            "store_check_interval_s": 0.02,
        }
        return validated(ServeSettings(**(values | overrides)))

    return make


@pytest.fixture
def replay_until(trained: Trained) -> Callable[[OnlineStore, datetime], None]:
    """Apply every event before ``until`` to ``store`` and advance the engine there."""

    log = replay_order(trained.market.events.lazy()).collect()

    def replay(store: OnlineStore, until: datetime) -> None:
        LogReplay(log, OnlineEngine(store, local_timezone=TIMEZONE)).apply_before(until)

    return replay


@pytest.fixture
def eventually() -> Callable[[Callable[[], bool]], Awaitable[None]]:
    """Await until ``condition()`` holds (fails after 10 s)."""

    async def wait(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.005)

    return wait
