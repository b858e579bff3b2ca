"""A worker during rollouts, in-process: the candidate beside the control, sticky
variants on the hot path, shadow scoring off it, and a candidate that cannot load
stopping the rollout, never the answers. (Two workers on a real Redis: tests/faults.)

One predictor lives through one scenario (a shadow phase, a canary step, the kill
switch, the 100 % step, an abort, a broken candidate) run once for the module; each test checks
one part of what it recorded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pytest

from arrive.clock import ManualClock
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.replay import LogReplay, replay_order
from arrive.monitoring.log_reader import read_log
from arrive.registry import InMemoryRegistry
from arrive.rollout.assignment import Assigner, unit_key
from arrive.rollout.control import Rollouts
from arrive.rollout.plan import RolloutPlan
from arrive.rollout.state import AuditEntry, Rollout
from arrive.schema.eta import EtaAnswer
from arrive.schema.events import OrderCreated
from arrive.schema.frame import frame_to_events
from arrive.serving.compiled import RowEncoder
from arrive.serving.predictor import EtaPredictor
from arrive.serving.settings import ServeSettings, validated
from arrive.serving.shadow import ShadowJob, ShadowQueue, chunks
from arrive.serving.wiring import build_predictor
from arrive.store.memory import InMemoryStore
from arrive.testing.trained import TIMEZONE, Trained

PLAN = RolloutPlan(shadow_minutes=1, steps=(30.0, 100.0), min_orders=1, min_minutes=0)
CUSTOMERS = 20


@dataclass(frozen=True)
class Pass:
    """A guardrail verdict that lets the rollout advance."""

    action: str = "pass"
    reason: str = "test: enough evidence"
    figures: dict[str, float] = field(default_factory=dict)


@dataclass
class Scenario:
    """What the module's predictor answered at each stage, and the stored rollouts."""

    orders: list[OrderCreated]
    stages: dict[str, list[EtaAnswer]] = field(default_factory=dict)
    shadow_scored: int = 0
    rollout: Rollout | None = None  # the first one (shadow, then canary, then aborted)
    broken: Rollout | None = None
    audit: list[AuditEntry] = field(default_factory=list)
    log: pl.DataFrame | None = None
    failed: list[str] = field(default_factory=list)
    """Requests of the canary that ended in an error (the candidate broken meanwhile)."""


def _orders(trained: Trained) -> list[OrderCreated]:
    """60 orders of the marketplace's second half, placed by 20 customers in turn."""
    events = trained.market.events
    created = events.filter(pl.col("type") == "order_created").sort("event_time", "event_id")
    frame = created[len(created) // 2 :: 3].head(60)
    orders = [e for e in frame_to_events(frame) if isinstance(e, OrderCreated)]
    return [
        msgspec.structs.replace(
            order, attributes={**order.attributes, "customer_id": f"c{i % CUSTOMERS}"}
        )
        for i, order in enumerate(orders)
    ]


async def _ask(
    predictor: EtaPredictor, orders: list[OrderCreated], prefix: str = "r"
) -> list[EtaAnswer]:
    answers = []
    for order in orders:  # one request per order, as a client sends them
        answers += await predictor.predict([order], [f"{prefix}-{order.order_id}"])
    return answers


async def _scored(shadow: ShadowQueue | None, expected: int) -> int:
    """Wait for the queue's task to score ``expected`` orders in all (after the answers)."""
    assert shadow is not None
    async with asyncio.timeout(30):
        while shadow.scored < expected:
            await asyncio.sleep(0.005)
    return shadow.scored


async def _with_a_broken_candidate(
    predictor: EtaPredictor, orders: list[OrderCreated]
) -> tuple[list[EtaAnswer], list[str]]:
    """Ask every order once while the candidate's trees give one column (its answers
    cannot be read: the request ends in an error); the answers and the failed requests."""
    assert predictor.routing is not None
    assert predictor.routing.route is not None
    compiled = predictor.routing.route.candidate.compiled
    real = compiled.predict_matrix
    compiled.predict_matrix = lambda matrix: real(matrix)[:, 0]  # type: ignore[method-assign]
    answers, failed = [], []
    try:
        for order in orders:
            try:
                answers += await predictor.predict([order], [f"e-{order.order_id}"])
            except IndexError:
                failed.append(f"e-{order.order_id}")
    finally:
        del compiled.predict_matrix
    return answers, failed


async def _run(
    predictor: EtaPredictor, registry: InMemoryRegistry, files: dict[str, bytes], out: Scenario
) -> None:
    orders, stages = out.orders, out.stages
    when = ManualClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    rollouts = Rollouts(registry, clock=when, verify=lambda _registry, _version: None)
    follow = predictor.background.follow_rollout  # the background job's step
    stages["before"] = await _ask(predictor, orders[:5])

    out.rollout = rollouts.start("2", PLAN, actor="test")
    await follow()
    stages["shadow"] = await _ask(predictor, orders[:20])
    expected = sum(a.fallback is None for a in stages["shadow"])
    out.shadow_scored = await _scored(predictor.shadow, expected)

    when.advance(120.0)
    assert rollouts.apply(Pass(), orders=10) is not None  # → canary 30 %
    await follow()
    stages["canary"] = await _ask(predictor, orders, "c1") + await _ask(predictor, orders, "c2")
    scored = out.shadow_scored + sum(a.fallback is None for a in stages["canary"])
    await _scored(predictor.shadow, scored)  # each version scores the other's orders
    stages["errors"], out.failed = await _with_a_broken_candidate(predictor, orders)
    predictor.set_kill_switch(True)
    stages["kill_switch"] = await _ask(predictor, orders[:10])
    predictor.set_kill_switch(False)

    assert rollouts.apply(Pass(), orders=10) is not None  # → canary 100 %
    await follow()
    stages["top"] = await _ask(predictor, orders[:20], prefix="top")
    expected = scored + sum(a.fallback is None for a in stages["top"])
    await _scored(predictor.shadow, expected)  # the control scores the candidate's orders

    rollouts.abort(actor="test")
    await follow()
    stages["after"] = await _ask(predictor, orders[:5])

    broken = registry.register({**files, "model.json": b"{not json"}, {}).version
    rollouts.start(broken, PLAN, actor="test")
    await follow()
    stages["broken"] = await _ask(predictor, orders[:10])
    out.broken = rollouts.status()
    out.audit = rollouts.audit()


@pytest.fixture(scope="module")
def scenario(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    orders = _orders(trained)
    last = max(order.event_time for order in orders)
    store = InMemoryStore()
    log = replay_order(trained.market.events.lazy()).collect()
    LogReplay(log, OnlineEngine(store, local_timezone=TIMEZONE)).apply_before(last)
    registry = trained.registry(3)  # copies of one model; production → 1
    log_dir = tmp_path_factory.mktemp("rollout-log")
    settings = ServeSettings(
        compile_backend="none",
        compile_cache_dir=trained.compile_cache,
        prediction_log_dir=log_dir,
        prediction_log_flush_s=3600.0,
        reload_interval_s=0.0,
    )
    clock = ManualClock(last + timedelta(seconds=1))
    predictor = build_predictor(validated(settings), store=store, clock=clock, registry=registry)
    out = Scenario(orders)

    async def run() -> None:
        async with predictor:
            await _run(predictor, registry, dict(trained.files), out)

    asyncio.run(run())
    (path,) = log_dir.iterdir()
    out.log = read_log(path)
    return out


def test_outside_a_rollout_answers_name_no_rollout(scenario: Scenario) -> None:
    for stage in ("before", "after"):
        assert {(a.variant, a.rollout) for a in scenario.stages[stage]} == {("production", None)}


def test_a_canary_answers_each_unit_from_its_variant_always_and_names_the_rollout(
    scenario: Scenario,
) -> None:
    rollout, answers = scenario.rollout, scenario.stages["canary"]
    assert rollout is not None
    assigner = Assigner(bytes.fromhex(rollout.salt))
    by_customer: dict[str, set[str]] = {}
    for order, answer in zip(scenario.orders * 2, answers, strict=True):
        customer = str(order.attributes["customer_id"])
        key = unit_key("customer", order_id=order.order_id, customer_id=customer)
        assert (answer.variant, answer.rollout) == (assigner.variant(key, 0.30), rollout.id)
        by_customer.setdefault(customer, set()).add(answer.variant)
        if answer.fallback is None:
            assert answer.model_version == ("2" if answer.variant == "candidate" else "1")
    assert all(len(variants) == 1 for variants in by_customer.values())
    assert {a.variant for a in answers} == {"control", "candidate"}
    assert sum(a.fallback is None for a in answers) > len(answers) // 2  # models answered


def test_the_kill_switch_still_sends_a_rollout_to_the_heuristic(scenario: Scenario) -> None:
    assert {(a.variant, a.fallback, a.rollout) for a in scenario.stages["kill_switch"]} == {
        ("heuristic", "kill_switch", None)
    }


def test_a_candidate_that_fails_to_load_stops_the_rollout_and_control_answers(
    scenario: Scenario,
) -> None:
    answers, broken = scenario.stages["broken"], scenario.broken
    assert {(a.variant, a.rollout) for a in answers} == {("production", None)}
    assert sum(a.model_version == "1" for a in answers) >= 5
    assert broken is not None
    assert broken.phase == "aborted"
    last = scenario.audit[-1]
    assert (last.rollout, last.actor) == (broken.id, "serving")
    assert f"candidate version {broken.candidate} failed to load" in last.reason


def test_shadow_scores_the_control_features_after_answering_and_logs_them(
    scenario: Scenario,
) -> None:
    answers, log = scenario.stages["shadow"], scenario.log
    assert log is not None
    model = [a for a in answers if a.fallback is None]
    assert len(model) >= 10
    assert scenario.shadow_scored == len(model)
    assert {(a.variant, a.rollout, a.model_version) for a in model} == {("control", "2-1", "1")}
    shadow = log.filter(
        (pl.col("variant") == "shadow") & pl.col("request_id").is_in([a.request_id for a in model])
    )
    assert set(shadow["model_version"]) == {"2"}
    assert len(shadow) == len(model)
    assert set(shadow["rollout"]) == {"2-1"}
    control = {a.request_id: a.p50_s for a in model}
    # version 2 is a copy of version 1: scoring the same features gives the same answer
    for request_id, p50 in zip(shadow["request_id"], shadow["p50_s"], strict=True):
        assert p50 == pytest.approx(control[request_id])


def test_at_100_percent_the_control_scores_the_candidate_orders_in_the_shadow(
    scenario: Scenario,
) -> None:
    answers, log = scenario.stages["top"], scenario.log
    assert log is not None
    model = [a for a in answers if a.fallback is None]
    assert len(model) >= 10
    assert {(a.variant, a.rollout, a.model_version) for a in model} == {("candidate", "2-1", "2")}
    control = log.filter(
        (pl.col("variant") == "shadow")
        & (pl.col("model_version") == "1")
        & pl.col("request_id").str.starts_with("top")
    )
    assert sorted(control["request_id"]) == sorted(a.request_id for a in model)
    assert set(control["rollout"]) == {"2-1"}
    served = {a.order_id: a.p50_s for a in model}  # the guardrails pair rows by order
    for order_id, p50 in zip(control["order_id"], control["p50_s"], strict=True):
        assert p50 == pytest.approx(served[order_id])  # version 2 is a copy of version 1


def test_at_a_canary_step_each_version_scores_the_other_orders_in_the_shadow(
    scenario: Scenario,
) -> None:
    answers, log = scenario.stages["canary"], scenario.log
    assert log is not None
    model = {a.request_id: a for a in answers if a.fallback is None}
    assert {a.variant for a in model.values()} == {"control", "candidate"}
    shadow = log.filter((pl.col("variant") == "shadow") & pl.col("request_id").is_in(list(model)))
    # one shadow row per model answer, by the version that did not answer it
    assert sorted(shadow["request_id"]) == sorted(model)
    other = {"1": "2", "2": "1"}
    for request_id, version in zip(shadow["request_id"], shadow["model_version"], strict=True):
        assert version == other[model[request_id].model_version]


def test_answers_log_their_service_time_and_shadow_rows_none(scenario: Scenario) -> None:
    log = scenario.log
    assert log is not None
    shadow = log.filter(pl.col("variant") == "shadow")
    answered = log.filter(pl.col("variant") != "shadow")
    assert not shadow.is_empty()
    assert not answered.is_empty()
    assert shadow["latency_s"].null_count() == len(shadow)
    assert answered["latency_s"].null_count() == 0
    assert (answered["latency_s"] >= 0).all()


def test_requests_that_end_in_an_error_are_logged_with_their_variant_and_error(
    scenario: Scenario,
) -> None:
    log, rollout = scenario.log, scenario.rollout
    assert log is not None
    assert rollout is not None
    assigner = Assigner(bytes.fromhex(rollout.salt))
    variants = {
        f"e-{order.order_id}": assigner.variant(
            unit_key("customer", order_id=order.order_id, customer_id=str(customer)), 0.30
        )
        for order in scenario.orders
        if (customer := order.attributes["customer_id"])
    }
    assert scenario.failed  # the candidate's units: their answers could not be read
    assert {variants[r] for r in scenario.failed} == {"candidate"}
    assert {a.variant for a in scenario.stages["errors"]} == {"control"}
    failed = log.filter(pl.col("request_id").is_in(scenario.failed))
    assert sorted(failed["request_id"]) == sorted(scenario.failed)
    assert set(failed["error"]) == {"IndexError"}
    assert set(zip(failed["variant"], failed["model_version"], failed["rollout"], strict=True)) == {
        ("candidate", "2", rollout.id)
    }
    assert failed["p50_s"].null_count() == len(failed)
    assert failed["latency_s"].null_count() == 0
    answered = log.filter(
        pl.col("request_id").str.starts_with("e-") & (pl.col("variant") != "shadow")
    )
    assert answered.filter(pl.col("error").is_null()).height == len(scenario.stages["errors"])


def test_the_log_names_each_row_variant_and_rollout(scenario: Scenario) -> None:
    log = scenario.log
    assert log is not None
    canary = log.filter(pl.col("variant").is_in(["control", "candidate"]))
    assert set(canary["rollout"]) == {"2-1"}
    assert log.filter(pl.col("variant") == "production")["rollout"].null_count() == len(
        log.filter(pl.col("variant") == "production")
    )


def test_a_full_shadow_queue_drops_and_counts_without_waiting() -> None:
    queue = ShadowQueue(2, log=None)
    job = ShadowJob("2-1", None, ["r1", "r2"], ["o1", "o2"], [{}, {}], datetime.now())  # type: ignore[arg-type]
    assert [queue.offer(job) for _ in range(4)] == [True, True, False, False]
    assert (len(queue), queue.dropped["queue_full"]) == (2, 4)  # counted by order


def test_jobs_offered_within_the_linger_are_scored_in_one_call() -> None:
    calls: list[int] = []

    class Trees:
        def predict(self, rows: list[dict[str, Any]]) -> np.ndarray:
            calls.append(len(rows))
            return np.tile([60.0, 90.0], (len(rows), 1))

    model: Any = SimpleNamespace(compiled=Trees(), p50=0, p90=1, version="2")

    async def scenario() -> list[int]:
        queue = ShadowQueue(100, log=None, linger_s=0.05)
        task = asyncio.create_task(queue.run())
        held = []
        for i in range(5):
            queue.offer(ShadowJob("2-1", model, [f"r{i}"], [f"o{i}"], [{}], datetime.now()))
            await asyncio.sleep(0)  # the task takes the first job, then lingers
            held.append(len(queue))
        async with asyncio.timeout(10):
            while queue.scored < 5:
                await asyncio.sleep(0.005)
        task.cancel()
        return [*held, len(queue)]

    # the job in hand counts as waiting (the demo's flush waits for it), then all 5 in one
    assert asyncio.run(scenario()) == [1, 2, 3, 4, 5, 0]
    assert calls == [5]


def test_shadow_scores_the_answers_matrix_when_its_model_encodes_alike() -> None:
    encoder = RowEncoder(["x", "shop"], {"shop": ["a", "b"]})
    calls: list[str] = []

    class Trees:
        def __init__(self, vocabulary: list[str]) -> None:
            self.encoder = RowEncoder(["x", "shop"], {"shop": vocabulary})

        def predict(self, rows: list[dict[str, Any]]) -> np.ndarray:
            calls.append("values")
            return np.tile([60.0, 90.0], (len(rows), 1))

        def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
            calls.append("matrix")
            return np.column_stack([matrix[:, 0], matrix[:, 0] + 1])

    alike: Any = SimpleNamespace(compiled=Trees(["a", "b"]), p50=0, p90=1, version="2")
    other: Any = SimpleNamespace(compiled=Trees(["b", "a"]), p50=0, p90=1, version="3")
    queue = ShadowQueue(10, log=None)
    rows = [{"x": 5.0, "shop": "b"}, {"x": 7.0, "shop": "a"}]
    for model in (alike, other):
        job = ShadowJob("2-1", model, ["r1", "r2"], ["o1", "o2"], rows, datetime.now())
        queue._score([replace(job, matrix=encoder.encode(rows), encoder=encoder)])
    # the same vocabulary reads the answers' rows; another order of it encodes again
    assert calls == ["matrix", "values"]
    assert queue.scored == 4


def test_a_batch_is_scored_per_model_in_chunks_between_which_requests_run() -> None:
    a: Any = SimpleNamespace(version="1")
    b: Any = SimpleNamespace(version="2")
    now = datetime.now()
    jobs = [ShadowJob("2-1", a if i % 2 else b, ["r"], ["o"], [{}], now) for i in range(80)]
    jobs.append(ShadowJob("2-1", a, ["r"] * 40, ["o"] * 40, [{}] * 40, now))  # never split
    out = chunks(jobs)
    assert [{job.model.version for job in chunk} for chunk in out] == [{"2"}] * 2 + [{"1"}] * 2
    # 32 orders a call; the last job of version 1 (40 orders) joins the chunk it starts in
    assert [sum(len(job.order_ids) for job in chunk) for chunk in out] == [32, 8, 32, 48]


def test_log_files_without_the_rollout_column_still_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from arrive.monitoring.prediction_log import OPTIONAL, SCHEMA

    old = pa.schema([column for column in SCHEMA if column.name not in OPTIONAL])
    row: dict[str, list[Any]] = {
        "request_id": ["r"],
        "order_id": ["o"],
        "time": [datetime(2026, 1, 1)],
        "variant": ["production"],
        "model_version": ["1"],
        "features": [None],
        "p50_s": [1.0],
        "p90_s": [2.0],
        "fallback": [None],
    }
    path = tmp_path / "predictions-20260101T000000Z-pid1-0.parquet"
    pq.write_table(pa.table(row, schema=old), path)
    frame = read_log(path)
    assert frame["rollout"].to_list() == [None]
    assert frame["latency_s"].to_list() == [None]
    assert frame["variant"].to_list() == ["production"]
