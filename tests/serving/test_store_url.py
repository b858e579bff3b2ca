"""A deployment whose keys live under a prefix: ``arrive ingest`` writes with
``redis://…?prefix=P`` and the service reads the same features with the same URL; a bad
store URL is one line naming the setting, for both commands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from arrive.cli.main import run
from arrive.clock import ManualClock
from arrive.schema.eta import EtaAnswer
from arrive.schema.events import OrderCreated
from arrive.schema.frame import frame_to_events
from arrive.serving.wiring import build_predictor


def _answers(predictor: Any, orders: list[OrderCreated]) -> list[EtaAnswer]:
    async def ask() -> list[EtaAnswer]:
        async with predictor:
            answers: list[EtaAnswer] = await predictor.predict(orders, ["r"] * len(orders))
            return answers

    return asyncio.run(ask())


@pytest.mark.redis
def test_serve_reads_what_ingest_wrote_under_a_prefix(
    trained: Any, settings_for: Any, redis_url: str, tmp_path: Path
) -> None:
    prefixed = f"{redis_url}?prefix=east"
    for store in (prefixed, redis_url):  # the same log in two namespaces of one server
        ingest = ["ingest", "--source", str(trained.data_dir), "--store", store, "--quiet"]
        assert run([*ingest, "--dead-letter", str(tmp_path / "dead.jsonl")]) == 0
    events = trained.market.events.sort("event_time", "event_id")
    created = events.filter(pl.col("type") == "order_created").tail(40)
    orders = [e for e in frame_to_events(created) if isinstance(e, OrderCreated)][::4]
    clock = ManualClock(events["event_time"].max())
    registry = trained.registry()

    def answers(store_url: str) -> list[tuple[Any, ...]]:
        settings = settings_for(store_url=store_url, deadline_ms=2000)
        predictor = build_predictor(settings, clock=clock, registry=registry)
        return [
            (a.fallback, a.p50_s, a.p90_s, a.stale_features) for a in _answers(predictor, orders)
        ]

    served = answers(prefixed)
    assert [fallback for fallback, *_ in served] == [None] * len(orders)
    assert served == answers(redis_url)  # the features ingest wrote, read from the prefix
    empty = answers(f"{redis_url}?prefix=west")  # a namespace nobody wrote
    assert {fallback for fallback, *_ in empty} == {"stale_features"}


@pytest.mark.parametrize("command", ["ingest", "serve"])
def test_a_bad_store_url_is_one_line_naming_the_setting(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "redis://:secret@127.0.0.1:1/0?prefx=east"
    args = {
        "ingest": ["ingest", "--source", str(tmp_path), "--store", url, "--quiet"],
        "serve": ["serve", "--store", url, "--registry", str(tmp_path)],
    }[command]
    assert run(args) == 2
    err = capsys.readouterr().err
    named = {"ingest": "--store: ", "serve": "setting store_url: "}[command]
    assert f"{named}unknown parameter 'prefx'" in err
    assert "secret" not in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
