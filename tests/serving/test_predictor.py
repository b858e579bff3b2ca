"""The hot path: model answers equal the offline model, and every fallback has its reason."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from arrive import datadir
from arrive.clock import ManualClock
from arrive.errors import ModelNotFound
from arrive.features.offline import build_features
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.reader import OnlineFeatures
from arrive.features.online.replay import LogReplay, replay_order
from arrive.features.spec import BuildContext
from arrive.monitoring import metrics
from arrive.registry import InMemoryRegistry
from arrive.schema.eta import EtaAnswer
from arrive.schema.events import OrderCreated
from arrive.serving.predictor import EtaPredictor
from arrive.serving.wiring import build_predictor
from arrive.store.base import EntityKey, FeatureRow
from arrive.store.memory import InMemoryStore
from arrive.testing.factories import order_spine
from arrive.testing.stores import GatedStore
from arrive.testing.trained import TIMEZONE

Pick = Callable[..., list[OrderCreated]]
Replay = Callable[[InMemoryStore, datetime], None]
Eventually = Callable[[Callable[[], bool]], Awaitable[None]]


def _ids(orders: Sequence[OrderCreated]) -> list[str]:
    return [f"r-{o.order_id}" for o in orders]


async def _ask(predictor: EtaPredictor, orders: Sequence[OrderCreated]) -> list[EtaAnswer]:
    return await predictor.predict(orders, _ids(orders))


def _answers(predictor: EtaPredictor, orders: Sequence[OrderCreated]) -> list[EtaAnswer]:
    """Start ``predictor``, ask for ``orders``, close it."""

    async def run() -> list[EtaAnswer]:
        async with predictor:
            return await _ask(predictor, orders)

    return asyncio.run(run())


def _same(online: Any, offline: Any) -> bool:
    if offline is None or (isinstance(offline, float) and math.isnan(offline)):
        return online is None
    if isinstance(offline, str) or isinstance(online, str):
        return str(online) == str(offline)
    return online is not None and abs(float(online) - float(offline)) <= 1e-9 * max(
        1.0, abs(float(offline))
    )


def test_answers_equal_the_offline_model_on_exact_features(
    trained: Any, settings_for: Any, late_orders: Pick
) -> None:
    bundle = trained.bundle()
    events = trained.market.events
    spine = order_spine(events)
    attributes = tuple(c for c in spine.columns if c not in datadir.ORDER_COLUMNS)
    offline = build_features(BuildContext(spine, events.lazy(), "Europe/Berlin", attributes))
    orders = sorted(late_orders(30), key=lambda o: o.event_time)
    frame = offline.frame.filter(pl.col("order_id").is_in([o.order_id for o in orders]))
    frame = frame.sort(pl.col("order_id").replace_strict([o.order_id for o in orders], range(30)))
    want = bundle.model.predict(frame.select(bundle.model.features_))

    async def run() -> list[tuple[EtaAnswer, bool]]:
        # one replay moving forward through the orders in time order, one service
        # answering each order at its own time
        store = InMemoryStore()
        replay = LogReplay(
            replay_order(events.lazy()).collect(), OnlineEngine(store, local_timezone=TIMEZONE)
        )
        clock = ManualClock(orders[0].event_time)
        predictor = build_predictor(
            settings_for(), store=store, clock=clock, registry=trained.registry()
        )
        out = []
        async with predictor:
            for order, row in zip(orders, frame.iter_rows(named=True), strict=True):
                replay.apply_before(order.event_time)
                clock.set(order.event_time)
                served = predictor.slot.current
                assert served is not None
                rows = store.get_many(served.reader.keys([order], clock.now()))
                values = served.reader.assemble([order], clock.now(), rows)[0].values
                exact = all(_same(values[n], row[n]) for n in served.names)
                out.append(((await _ask(predictor, [order]))[0], exact))
        return out

    results = asyncio.run(run())
    exact = [i for i, (answer, ok) in enumerate(results) if ok and answer.fallback is None]
    assert len(exact) >= 24, [a.fallback for a, _ in results]
    for i in exact:
        answer = results[i][0]
        assert answer.variant == "production"
        assert answer.model_version == "1"
        np.testing.assert_allclose([answer.p50_s, answer.p90_s], want[i], rtol=1e-6)
        assert answer.promised_at == orders[i].event_time + timedelta(seconds=answer.p90_s)


def test_a_batch_gets_one_store_round_trip_and_answers_in_order(
    trained: Any, settings_for: Any, late_orders: Pick, replay_until: Replay
) -> None:
    orders = late_orders(12)
    at = max(o.event_time for o in orders)
    store = _CountingStore()
    replay_until(store, at)
    predictor = build_predictor(
        settings_for(), store=store, clock=ManualClock(at), registry=trained.registry()
    )

    async def run() -> list[EtaAnswer]:
        async with predictor:
            store.reads = 0
            return await _ask(predictor, orders)

    answers = asyncio.run(run())
    assert store.reads == 1
    assert [a.order_id for a in answers] == [o.order_id for o in orders]
    assert [a.request_id for a in answers] == _ids(orders)
    assert all(a.p90_s >= a.p50_s > 0 for a in answers)
    assert any(a.fallback is None for a in answers)


def test_a_batch_works_out_its_own_features_while_the_read_is_out(
    trained: Any,
    settings_for: Any,
    late_orders: Pick,
    replay_until: Replay,
    monkeypatch: pytest.MonkeyPatch,
    eventually: Eventually,
) -> None:
    """A store that is not in process: what the orders give themselves is worked out
    before the rows arrive, and the answers are exactly those of an inline read."""
    orders = late_orders(12)
    at = max(o.event_time for o in orders)
    early: list[int] = []
    requested = OnlineFeatures.requested

    def spy(reader: OnlineFeatures, *args: Any) -> Any:
        early.append(len(args[0]))
        return requested(reader, *args)

    monkeypatch.setattr(OnlineFeatures, "requested", spy)

    def predictor_on(store: Any) -> EtaPredictor:
        settings = settings_for(deadline_ms=60_000)  # the gate, not the deadline, decides
        return build_predictor(
            settings, store=store, clock=ManualClock(at), registry=trained.registry()
        )

    async def inline() -> list[EtaAnswer]:
        memory = InMemoryStore()
        replay_until(memory, at)
        async with predictor_on(memory) as predictor:
            return await _ask(predictor, orders)

    async def gated() -> list[EtaAnswer]:
        memory = InMemoryStore()
        replay_until(memory, at)
        store = GatedStore(memory)
        store.gate.set()  # the start-up checks pass
        async with predictor_on(store) as predictor:
            store.gate.clear()
            asking = asyncio.ensure_future(_ask(predictor, orders))
            await eventually(lambda: store.waiting == 1)
            await eventually(lambda: early == [12])  # while the read waits at the gate
            store.gate.set()
            return await asking

    want = asyncio.run(inline())
    early.clear()
    assert asyncio.run(gated()) == want
    assert early == [12]
    assert any(a.fallback is None for a in want)


class _CountingStore(InMemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        self.reads += 1
        return super().get_many(keys)


def _heuristic_eta(trained: Any, order: OrderCreated) -> tuple[float, float]:
    from zoneinfo import ZoneInfo

    from arrive.serving.slot import HeuristicAnswer

    return HeuristicAnswer(trained.bundle().heuristic, ZoneInfo("Europe/Berlin"), (1, 2)).eta(order)


def test_kill_switch_forces_the_heuristic_and_can_be_lifted(
    trained: Any, settings_for: Any, late_orders: Pick, replay_until: Replay
) -> None:
    orders = late_orders(3)
    at = max(o.event_time for o in orders)
    store = InMemoryStore()
    replay_until(store, at)
    predictor = build_predictor(
        settings_for(), store=store, clock=ManualClock(at), registry=trained.registry()
    )

    async def run() -> tuple[list[EtaAnswer], list[EtaAnswer]]:
        async with predictor:
            predictor.set_kill_switch(True)
            killed = await _ask(predictor, orders)
            predictor.set_kill_switch(False)
            lifted = await _ask(predictor, orders)
            return killed, lifted

    killed, lifted = asyncio.run(run())
    assert {(a.fallback, a.variant, a.model_version) for a in killed} == {
        ("kill_switch", "heuristic", None)
    }
    for answer, order in zip(killed, orders, strict=True):
        assert (answer.p50_s, answer.p90_s) == _heuristic_eta(trained, order)
    assert all(a.fallback != "kill_switch" for a in lifted)


def test_overload_sheds_new_requests_at_once(
    trained: Any,
    settings_for: Any,
    late_orders: Pick,
    replay_until: Replay,
    eventually: Eventually,
) -> None:
    orders = late_orders(2)
    at = max(o.event_time for o in orders)
    memory = InMemoryStore()
    replay_until(memory, at)

    async def run() -> tuple[list[EtaAnswer], list[EtaAnswer]]:
        store = GatedStore(memory)
        predictor = build_predictor(
            settings_for(max_in_flight=2, deadline_ms=30_000, admission_wait_ms=0),
            store=store,
            clock=ManualClock(at),
            registry=trained.registry(),
        )
        async with predictor:
            held = [asyncio.create_task(_ask(predictor, orders[:1])) for _ in range(2)]
            await eventually(lambda: store.waiting == 2)
            shed = await _ask(predictor, orders)
            store.gate.set()
            first = [answers[0] for answers in await asyncio.gather(*held)]
            return shed, first

    before = metrics.PREDICTIONS.labels("heuristic", "overload")._value.get()
    shed, first = asyncio.run(run())
    assert [a.fallback for a in shed] == ["overload", "overload"]
    assert all(a.fallback != "overload" for a in first)
    assert metrics.PREDICTIONS.labels("heuristic", "overload")._value.get() == before + 2


def test_a_request_over_the_cap_waits_for_a_slot_and_the_model_answers_it(
    trained: Any,
    settings_for: Any,
    late_orders: Pick,
    replay_until: Replay,
    eventually: Eventually,
) -> None:
    orders = late_orders(1)
    memory = InMemoryStore()
    replay_until(memory, orders[0].event_time)

    async def run() -> tuple[int, list[EtaAnswer]]:
        store = GatedStore(memory)
        predictor = build_predictor(
            settings_for(max_in_flight=2, deadline_ms=30_000, admission_wait_ms=250),
            store=store,
            clock=ManualClock(orders[0].event_time),
            registry=trained.registry(),
        )
        async with predictor:
            held = [asyncio.create_task(_ask(predictor, orders)) for _ in range(2)]
            await eventually(lambda: store.waiting == 2)
            queued = asyncio.create_task(_ask(predictor, orders))
            await eventually(lambda: predictor.admission.queued == 1)
            waiting = store.waiting  # the third request has not reached the store
            store.gate.set()
            await asyncio.gather(*held)
            return waiting, await queued

    waiting, answers = asyncio.run(run())
    assert waiting == 2
    assert [a.fallback for a in answers] == [None]


def test_a_read_past_its_deadline_keeps_the_store_up_and_counts_until_it_ends(
    trained: Any,
    settings_for: Any,
    late_orders: Pick,
    replay_until: Replay,
    eventually: Eventually,
) -> None:
    orders = late_orders(1)
    at = orders[0].event_time
    memory = InMemoryStore()
    replay_until(memory, at)

    async def run() -> tuple[list[str | None], bool | None, int, int, int]:
        store = GatedStore(memory)
        predictor = build_predictor(
            settings_for(deadline_ms=20, max_in_flight=1, admission_wait_ms=0),
            store=store,
            clock=ManualClock(at),
            registry=trained.registry(),
        )
        async with predictor:
            gc.collect()
            gc.disable()
            try:
                late = await _ask(predictor, orders)  # its read is still held at the gate
                held_in_flight = predictor.in_flight
                shed = await _ask(predictor, orders)  # the late read still occupies the slot
                store.gate.set()
                await eventually(lambda: predictor.in_flight == 0 and store.waiting == 0)
                served = await _ask(predictor, orders)
                cycles = gc.collect()
            finally:
                gc.enable()
            store_ok = predictor.store_ok
            reads_left = len(predictor._late)
        reasons = [a.fallback for a in (*late, *shed, *served)]
        return reasons, store_ok, held_in_flight, reads_left, cycles

    reasons, store_ok, held_in_flight, reads_left, cycles = asyncio.run(run())
    assert reasons == ["deadline", "overload", None]
    assert store_ok is True  # a passed deadline is not a store failure
    assert held_in_flight == 1
    assert reads_left == 0
    assert cycles == 0  # each freed at once: no young collection full of them under load


def test_aclose_is_bounded_when_a_background_job_hangs(
    trained: Any, settings_for: Any, late_orders: Pick, eventually: Eventually
) -> None:
    orders = late_orders(1)

    class _HangingPing(GatedStore):
        hang = False

        async def ping(self) -> None:
            if self.hang:
                self.waiting += 1
                await asyncio.Event().wait()

    async def run() -> list[bool]:
        store = _HangingPing(InMemoryStore())
        predictor = build_predictor(
            settings_for(store_check_interval_s=0.01),
            store=store,
            clock=ManualClock(orders[0].event_time),
            registry=trained.registry(),
        )
        predictor.config = dataclasses.replace(predictor.config, close_timeout_s=0.05)
        await predictor.start()
        loops = list(predictor.background.tasks)
        store.hang = True
        await eventually(lambda: store.waiting >= 1)  # the periodic ping is stuck
        await asyncio.wait_for(predictor.aclose(), timeout=10)
        return [loop.done() for loop in loops]

    assert all(asyncio.run(run()))


def test_a_slow_store_answers_with_the_deadline_fallback(
    trained: Any, settings_for: Any, late_orders: Pick
) -> None:
    orders = late_orders(2)

    async def run() -> list[EtaAnswer]:
        store = GatedStore(InMemoryStore())  # never opened
        predictor = build_predictor(
            settings_for(deadline_ms=20),
            store=store,
            clock=ManualClock(orders[-1].event_time),
            registry=trained.registry(),
        )
        async with predictor:
            return await _ask(predictor, orders)

    answers = asyncio.run(run())
    assert [a.fallback for a in answers] == ["deadline", "deadline"]
    assert all(a.variant == "heuristic" and a.model_version is None for a in answers)


def test_too_many_stale_or_missing_features_fall_back(
    trained: Any, settings_for: Any, late_orders: Pick
) -> None:
    orders = late_orders(2)
    predictor = build_predictor(
        settings_for(),
        store=InMemoryStore(),  # empty: nothing known, the pipeline's watermark missing
        clock=ManualClock(orders[-1].event_time),
        registry=trained.registry(),
    )

    answers = _answers(predictor, orders)
    assert [a.fallback for a in answers] == ["stale_features", "stale_features"]
    assert all(len(a.stale_features) > len(trained.bundle().model.features_) / 2 for a in answers)
    assert "store_delivery_mean_7d" in answers[0].stale_features


def test_a_failing_model_falls_back_with_model_error(
    trained: Any,
    settings_for: Any,
    late_orders: Pick,
    replay_until: Replay,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orders = late_orders(2)
    at = max(o.event_time for o in orders)
    store = InMemoryStore()
    replay_until(store, at)
    predictor = build_predictor(
        settings_for(), store=store, clock=ManualClock(at), registry=trained.registry()
    )

    def broken(rows: object) -> object:
        raise RuntimeError("boom")

    async def run() -> list[EtaAnswer]:
        async with predictor:
            served = predictor.slot.current
            assert served is not None
            monkeypatch.setattr(served.compiled, "predict_matrix", broken)
            return await _ask(predictor, orders)

    answers = asyncio.run(run())
    assert [a.fallback for a in answers] == ["model_error", "model_error"]
    for answer, order in zip(answers, orders, strict=True):
        assert (answer.p50_s, answer.p90_s) == _heuristic_eta(trained, order)


def test_no_model_answers_with_the_newest_loadable_heuristic_and_is_ready(
    trained: Any, settings_for: Any, late_orders: Pick
) -> None:
    orders = late_orders(2)
    registry = InMemoryRegistry()
    registry.register(dict(trained.files), dict(trained.metadata))  # no alias set
    predictor = build_predictor(
        settings_for(), store=InMemoryStore(), clock=ManualClock(), registry=registry
    )

    async def run() -> tuple[list[EtaAnswer], tuple[bool, str]]:
        async with predictor:
            answers = await _ask(predictor, orders)
            ready = predictor.ready()
            with pytest.raises(ModelNotFound, match="alias production is not set"):
                await predictor.reload()
            return answers, ready

    answers, ready = asyncio.run(run())
    assert ready == (True, "")  # the heuristic can answer
    assert predictor.health().problems == [
        "no model serves (alias production is not set); the heuristic answers",
        "2 of the last 2 answers from the heuristic (mostly no_model)",
    ]
    assert [a.fallback for a in answers] == ["no_model", "no_model"]
    for answer, order in zip(answers, orders, strict=True):
        assert (answer.p50_s, answer.p90_s) == _heuristic_eta(trained, order)


def test_an_empty_registry_answers_the_configured_constants(
    settings_for: Any, late_orders: Pick
) -> None:
    orders = late_orders(1)
    predictor = build_predictor(
        settings_for(no_model_p50_s=1200, no_model_p90_s=1800),
        store=InMemoryStore(),
        registry=InMemoryRegistry(),
    )

    (answer,) = _answers(predictor, orders)
    assert (answer.fallback, answer.p50_s, answer.p90_s) == ("no_model", 1200.0, 1800.0)
    ready, reason = predictor.ready()  # constants are no answer to send traffic to
    assert (ready, reason.split(" (")[0]) == (False, "no model and no heuristic loaded")
    assert answer.promised_at == orders[0].event_time + timedelta(seconds=1800)


def test_ready_does_not_depend_on_the_store_whose_state_health_reports(
    trained: Any, settings_for: Any, eventually: Eventually
) -> None:
    class Flaky(GatedStore):
        up = True

        async def ping(self) -> None:
            if not self.up:
                from arrive.errors import FeatureStoreUnavailable

                raise FeatureStoreUnavailable("down")

    store = Flaky(InMemoryStore())
    predictor = build_predictor(settings_for(), store=store, registry=trained.registry())

    async def run() -> list[tuple[tuple[bool, str], str, list[str]]]:
        seen = []

        def look() -> None:
            health = predictor.health()
            seen.append((predictor.ready(), health.store, health.problems))

        look()
        async with predictor:
            look()
            store.up = False
            await eventually(lambda: predictor.store_ok is False)
            look()
            store.up = True
            await eventually(lambda: predictor.store_ok is True)
            look()
            return seen

    seen = asyncio.run(run())
    assert seen[0][0][0] is False  # nothing loaded before start
    assert seen[1] == ((True, ""), "up", [])
    assert seen[2] == ((True, ""), "down", ["feature store unreachable; the heuristic answers"])
    assert seen[3] == ((True, ""), "up", [])


def test_start_deletes_prediction_log_leftovers_and_close_publishes_the_answers(
    settings_for: Any, late_orders: Pick, tmp_path: Path
) -> None:
    orders = late_orders(2)
    leftover = tmp_path / f".predictions-20250303T110000Z-pid{os.getpid()}-9.parquet.tmp"
    leftover.write_bytes(b"PAR1")  # a file an earlier process with this id never finished
    settings = settings_for(prediction_log_dir=tmp_path, prediction_log_flush_s=3600.0)
    predictor = build_predictor(settings, store=InMemoryStore(), registry=InMemoryRegistry())

    async def run() -> bool:
        async with predictor:
            left = leftover.exists()  # started, nothing flushed yet
            await _ask(predictor, orders)
            return left

    assert asyncio.run(run()) is False
    (published,) = tmp_path.iterdir()
    assert pq.read_table(published).column("request_id").to_pylist() == _ids(orders)
