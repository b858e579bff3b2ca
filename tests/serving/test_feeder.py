"""The embedded default: a data directory replayed into the in-process store at start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest

from arrive.errors import ConfigError, InputFileError
from arrive.schema.eta import EtaAnswer
from arrive.schema.events import OrderCreated
from arrive.serving.wiring import build_predictor


def test_a_replayed_data_dir_answers_from_real_features_and_logs_them(
    trained: Any, settings_for: Any, eventually: Any, tmp_path: Path
) -> None:
    settings = settings_for(replay_dir=trained.data_dir, prediction_log_dir=tmp_path / "log")
    predictor = build_predictor(settings, registry=trained.registry())
    feeder = predictor.feeder
    assert feeder is not None
    last = trained.market.events.get_column("event_time").max()
    order = OrderCreated(
        event_id="new:order_created",
        event_time=last,
        order_id="new",
        store_id="s1",
        market_id="m1",
        pickup_lat=52.51,
        pickup_lon=13.41,
        drop_lat=52.52,
        drop_lon=13.43,
        items=2,
    )

    async def run() -> tuple[list[EtaAnswer], tuple[bool, str]]:
        async with predictor:
            await eventually(lambda: predictor.ready()[0])
            ready = predictor.ready()
            answers = await predictor.predict([order], ["req-1"])
            return answers, ready

    (answer,), ready = asyncio.run(run())
    assert ready == (True, "")
    assert feeder.error is None
    assert feeder.applied == trained.market.events.height
    assert feeder.clock.now() == last
    assert answer.fallback is None, answer.stale_features
    assert answer.model_version == "1"
    logged = pl.concat([pl.read_parquet(p) for p in (tmp_path / "log").glob("*.parquet")])
    assert logged.get_column("request_id").to_list() == ["req-1"]
    features = msgspec.json.decode(logged.get_column("features")[0])
    assert features["store_id"] == "s1"
    assert features["store_history_count"] > 0


def test_replay_needs_the_in_process_store_and_an_event_log(
    settings_for: Any, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="replay_dir"):
        build_predictor(settings_for(replay_dir=tmp_path, store_url="redis://127.0.0.1:1/0"))
    with pytest.raises(InputFileError, match="no event log"):
        build_predictor(settings_for(replay_dir=tmp_path))
