"""One small trained model per test session, and registries holding it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from arrive.features.online.engine import OnlineEngine
from arrive.features.online.replay import LogReplay, replay_order
from arrive.models.artifact import ModelBundle
from arrive.registry import InMemoryRegistry
from arrive.schema.events import OrderCreated
from arrive.schema.frame import frame_to_events
from arrive.serving.settings import ServeSettings, validated
from arrive.store.base import OnlineStore
from arrive.testing.factories import Marketplace, random_marketplace, write_data_dir
from arrive.training.pipeline import TrainConfig, run_training

TIMEZONE = "Europe/Berlin"


@dataclass(frozen=True)
class Trained:
    """A trained model's data directory, marketplace, bundle files and metadata."""

    data_dir: Path
    market: Marketplace
    files: Mapping[str, bytes]
    metadata: Mapping[str, Any]
    compile_cache: Path

    def bundle(self) -> ModelBundle:
        return ModelBundle.from_files(self.files)

    def registry(self, versions: int = 1) -> InMemoryRegistry:
        """An in-memory registry with ``versions`` copies of the model; production → 1."""
        registry = InMemoryRegistry()
        for _ in range(versions):
            registry.register(dict(self.files), dict(self.metadata))
        registry.set_alias("production", "1", reason="test")
        return registry


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    work = tmp_path_factory.mktemp("serving-model")
    market = random_marketplace(seed=1, n_orders=800, days=8)
    data = write_data_dir(work / "data", market, TIMEZONE)
    registry = InMemoryRegistry()
    config = TrainConfig(
        select_groups=False,
        model_params={"n_estimators": 80, "early_stopping_rounds": 1000, "num_leaves": 15},
    )
    result = run_training(data, work / "run", config, registry)
    loaded = registry.open(result.version or "")
    return Trained(data, market, loaded.files, loaded.metadata, work / "compiled")


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
