"""Admission: the cap, the bounded queue, and goodput under a simulated 10x closed-loop load."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import pytest

from arrive.clock import ManualClock
from arrive.serving.admission import Admission

_TURNS = 6
"""Event-loop turns that let every runnable simulated client reach its next wait."""


async def _settle() -> None:
    for _ in range(_TURNS):
        await asyncio.sleep(0)


def test_requests_under_the_cap_enter_at_once_and_the_next_is_shed_without_a_queue() -> None:
    async def run() -> list[bool]:
        admission = Admission(ManualClock(), cap=2, max_wait_s=0.0, max_queued=10)
        return [await admission.enter() is not None for _ in range(3)]

    assert asyncio.run(run()) == [True, True, False]


def test_a_waiter_gets_the_first_freed_slot_in_arrival_order() -> None:
    async def run() -> tuple[list[int], int]:
        clock = ManualClock()
        admission = Admission(clock, cap=1, max_wait_s=1.0, max_queued=10)
        assert await admission.enter() is not None
        order: list[int] = []

        async def wait(i: int) -> None:
            if await admission.enter() is not None:
                order.append(i)

        tasks = [asyncio.create_task(wait(i)) for i in range(2)]
        await _settle()
        queued = admission.queued
        admission.release(None)
        await _settle()
        admission.release(None)
        await asyncio.gather(*tasks)
        return order, queued

    order, queued = asyncio.run(run())
    assert queued == 2
    assert order == [0, 1]


def test_a_waiter_past_the_wait_budget_is_shed_when_a_slot_frees() -> None:
    async def run() -> tuple[float | None, float | None, int]:
        clock = ManualClock()
        admission = Admission(clock, cap=1, max_wait_s=0.25, max_queued=10)
        assert await admission.enter() is not None
        old = asyncio.create_task(admission.enter())
        await _settle()
        clock.advance(0.3)
        young = asyncio.create_task(admission.enter())
        await _settle()
        admission.release(None)
        return await old, await young, admission.shed

    old, young, shed = asyncio.run(run())
    assert (old, young, shed) == (None, 0.3, 1)


def test_a_full_queue_sheds_the_newcomer_at_once() -> None:
    async def run() -> float | None:
        admission = Admission(ManualClock(), cap=1, max_wait_s=1.0, max_queued=1)
        assert await admission.enter() is not None
        waiter = asyncio.create_task(admission.enter())
        await _settle()
        shed = await admission.enter()
        waiter.cancel()
        return shed

    assert asyncio.run(run()) is None


def test_a_cancelled_waiter_does_not_keep_a_slot() -> None:
    async def run() -> tuple[int, float | None]:
        admission = Admission(ManualClock(), cap=1, max_wait_s=1.0, max_queued=10)
        assert await admission.enter() is not None
        waiter = asyncio.create_task(admission.enter())
        await _settle()
        waiter.cancel()
        await _settle()
        admission.release(None)
        return admission.in_flight, await admission.enter()

    assert asyncio.run(run()) == (0, 0.0)


def test_slow_requests_cut_the_limit_once_per_round_trip_and_quick_ones_raise_it() -> None:
    async def run() -> list[float]:
        clock = ManualClock()
        admission = Admission(clock, cap=10, max_wait_s=1.0, max_queued=10, target_s=0.01)
        starts = [await admission.enter() for _ in range(10)]
        clock.advance(0.05)
        for start in starts:  # ten slow answers ending together: one round trip
            admission.release(start)
        after_one = admission.limit
        clock.advance(0.01)
        start = await admission.enter()
        clock.advance(0.06)
        admission.release(start)  # slow again, a round trip after the cut
        after_two = admission.limit
        for _ in range(200):  # quick answers with the slots busy
            held = [await admission.enter() for _ in range(int(admission.limit))]
            for start in held:
                admission.release(start)
        return [after_one, after_two, admission.limit]

    after_one, after_two, recovered = asyncio.run(run())
    assert after_one == pytest.approx(9.0)
    assert after_two == pytest.approx(8.1)
    assert recovered == 10.0


# -- a simulated worker under closed-loop load ---------------------------------------------

_SHED_COST_S = 115e-6
"""CPU of a request answered without the model (HTTP in and out): one worker's share of
the 17,460 req/s, nearly all shed, measured at wrk -c640 in issue 23."""
_MODEL_COST_S = 341e-6 - _SHED_COST_S
"""CPU a model answer adds: one worker's share of the 5,860 req/s at wrk -c64 (issue 23)."""
_DEADLINE_S = 0.025
"""The read deadline (``deadline_ms`` default): a model answer later than this is ``deadline``."""


@dataclass
class _Tally:
    model: int = 0
    shed: int = 0
    late: int = 0
    worst_s: float = 0.0


async def _simulate(clients: int, adaptive: bool, seconds: float) -> _Tally:
    """``clients`` closed-loop clients against one worker: a single CPU served in order;
    ``adaptive``: the service's admission, otherwise the fixed cap of 48 shedding at once."""
    clock = ManualClock()
    admission = (
        Admission(clock, 48, 0.25, 4096, target_s=_DEADLINE_S / 2)
        if adaptive
        else Admission(clock, 48, 0.0, 4096)
    )
    cpu: deque[tuple[float, asyncio.Future[None]]] = deque()
    tally = _Tally()
    loop = asyncio.get_running_loop()

    async def work(cost: float) -> None:
        done: asyncio.Future[None] = loop.create_future()
        cpu.append((cost, done))
        await done

    async def client() -> None:
        while True:
            sent = clock.monotonic()
            await work(_SHED_COST_S)
            admitted = await admission.enter()
            if admitted is not None:
                try:
                    await work(_MODEL_COST_S)
                finally:
                    admission.release(admitted)
                if clock.monotonic() - admitted > _DEADLINE_S:
                    tally.late += 1
                else:
                    tally.model += 1
            else:
                tally.shed += 1
            tally.worst_s = max(tally.worst_s, clock.monotonic() - sent)

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    while clock.monotonic() < seconds:
        await _settle()
        cost, done = cpu.popleft()
        clock.advance(cost)
        done.set_result(None)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return tally


@pytest.fixture(scope="module")
def capacity() -> float:
    """Model answers per simulated second at 32 clients (one worker's half of wrk -c64)."""
    return asyncio.run(_simulate(32, False, 2.0)).model / 2.0


def test_at_ten_times_the_load_queueing_keeps_the_model_near_its_capacity(
    capacity: float,
) -> None:
    tally = asyncio.run(_simulate(320, True, 2.0))
    assert tally.model / 2.0 >= 0.8 * capacity
    assert tally.worst_s < 1.0  # every request answered, none near a client's timeout


def test_at_ten_times_the_load_shedding_at_once_starves_the_model(capacity: float) -> None:
    tally = asyncio.run(_simulate(320, False, 2.0))
    assert tally.model / 2.0 < 0.5 * capacity
    assert tally.shed + tally.late > tally.model
