"""The feature store failing under a running ``arrive serve``: Redis unreachable, killed,
paused, slow, its connections cut, empty; and overload.

In every case each request still gets a 200 answer (the heuristic, with the reason),
``/readyz`` stays 200 (the replica can answer; every replica shares the store, so a
store outage must not take them all out of rotation), and ``/healthz`` and the
metrics say what is wrong. When the fault ends, the model answers again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from arrive.testing.servers.eta_service import ServiceProbe
from arrive.testing.servers.redis_server import RedisServer
from arrive.testing.servers.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.redis, pytest.mark.faults]

HEURISTIC_REASONS = {"store_unavailable", "deadline"}


def _reasons(answers: list[dict[str, Any]]) -> list[str | None]:
    return [a["fallback"] for a in answers]


def _heuristic(answers: list[dict[str, Any]]) -> bool:
    return all(a["variant"] == "heuristic" and 0 < a["p50_s"] <= a["p90_s"] for a in answers)


def test_redis_unreachable_answers_with_the_heuristic_and_stays_ready(
    healthy_service: ServiceProbe, redis_proxy: TcpProxy, fault_data: Any
) -> None:
    service, orders = healthy_service, fault_data.orders
    before = service.metric("arrive_predictions_total", fallback="store_unavailable")
    redis_proxy.refuse()
    redis_proxy.cut()
    service.wait(lambda: service.health()["store"] == "down", "the store to be seen down")
    answers = [service.eta(o) for o in orders[:10]]
    ready, health = service.ready(), service.health()
    store_up = service.metric("arrive_store_up")
    counted = service.metric("arrive_predictions_total", fallback="store_unavailable") - before

    redis_proxy.restore()
    service.wait(lambda: service.answers_with_model(orders[0]), "the model to answer again")

    assert _reasons(answers) == ["store_unavailable"] * 10
    assert _heuristic(answers)
    assert ready == 200
    assert health["status"] == "degraded"
    assert "feature store unreachable; the heuristic answers" in health["problems"]
    assert health["recent_fallbacks"]["store_unavailable"] >= 10
    assert store_up == 0
    assert counted >= 10


def test_a_replica_starting_while_redis_is_unreachable_gets_ready(
    start_service: Any, redis_proxy: TcpProxy, fault_data: Any
) -> None:
    redis_proxy.refuse()
    try:
        url = f"redis://127.0.0.1:{redis_proxy.port}/0"
        service = start_service({"ARRIVE_STORE_URL": url})  # waits for /readyz 200
        answer = service.eta(fault_data.orders[0])
        health = service.health()
    finally:
        redis_proxy.restore()
    assert answer["fallback"] == "store_unavailable"
    assert health["store"] == "down"


def test_redis_killed_then_restarted(
    healthy_service: ServiceProbe, redis: RedisServer, fault_data: Any, refill: Any
) -> None:
    service, orders = healthy_service, fault_data.orders
    port = redis.port
    redis.stop()
    try:
        answers = [service.eta(o) for o in orders[:10]]
        service.wait(lambda: service.health()["store"] == "down", "the store to be seen down")
        ready = service.ready()
    finally:
        redis.start(port)  # the same port, empty: the features are written again
        refill(redis)
    service.wait(lambda: service.answers_with_model(orders[0]), "the model to answer again")
    after = [service.eta(o) for o in orders[:5]]

    assert set(_reasons(answers)) <= HEURISTIC_REASONS
    assert _reasons(answers)[-1] == "store_unavailable"
    assert _heuristic(answers)
    assert ready == 200
    assert _reasons(after) == [None] * 5


def test_redis_paused_answers_within_the_deadline_with_the_heuristic(
    healthy_service: ServiceProbe, redis: RedisServer, fault_data: Any
) -> None:
    service, orders = healthy_service, fault_data.orders
    deadlines = service.metric("arrive_store_errors_total", kind="deadline")
    redis.pause()  # SIGSTOP: connections stay open, nothing answers
    try:
        answers = [service.eta(o) for o in orders[:6]]
        ready = service.ready()
        late = service.metric("arrive_store_errors_total", kind="deadline") - deadlines
    finally:
        redis.resume()
    service.wait(lambda: service.answers_with_model(orders[0]), "the model to answer again")

    assert set(_reasons(answers)) <= HEURISTIC_REASONS
    assert _reasons(answers)[0] == "deadline"  # the first read waits for its deadline only
    assert _heuristic(answers)
    assert ready == 200
    assert late >= 1


def test_latency_past_the_deadline_answers_deadline_and_keeps_the_store_up(
    healthy_service: ServiceProbe, redis_proxy: TcpProxy, fault_data: Any
) -> None:
    service, orders = healthy_service, fault_data.orders
    redis_proxy.add_latency(0.35)  # 0.7 s per round trip: past the 500 ms deadline
    try:
        answers = [service.eta(o) for o in orders[:5]]
        ready, health = service.ready(), service.health()
    finally:
        redis_proxy.restore()
    service.wait(lambda: service.answers_with_model(orders[0]), "the model to answer again")

    assert _reasons(answers) == ["deadline"] * 5
    assert _heuristic(answers)
    assert ready == 200
    assert health["store"] == "up"  # slow is not down: its pings still succeed


def test_a_ten_times_spike_while_redis_is_slow_gets_every_answer_in_time(
    healthy_service: ServiceProbe, redis_proxy: TcpProxy, fault_data: Any
) -> None:
    """Ten clients at once where one came before, each read past the deadline: every
    request answered 200 by the heuristic with its reason, none timing out, and the
    service ready throughout."""
    service, orders = healthy_service, fault_data.orders
    spike = [orders[i % len(orders)] for i in range(10 * len(orders))]
    redis_proxy.add_latency(0.35)  # 0.7 s per round trip: past the 500 ms deadline
    try:
        with ThreadPoolExecutor(10 * 4) as pool:
            # a client that gives up after 6 deadlines: an answer later than that is lost
            pending = [pool.submit(service.request, "POST", "/v1/eta", o, 3.0) for o in spike]
            ready = pool.submit(service.ready).result()
            results = [p.result() for p in pending]
    finally:
        redis_proxy.restore()
    service.wait(lambda: service.answers_with_model(orders[0]), "the model to answer again")

    assert [status for status, _ in results] == [200] * len(spike)
    answers = [answer for _, answer in results]
    assert set(_reasons(answers)) <= HEURISTIC_REASONS | {"overload"}
    assert _reasons(answers).count("deadline") >= 1
    assert _heuristic(answers)
    assert ready == 200


def test_connections_cut_are_reopened(
    healthy_service: ServiceProbe, redis_proxy: TcpProxy, fault_data: Any
) -> None:
    service, orders = healthy_service, fault_data.orders
    accepted = redis_proxy.accepted
    assert redis_proxy.cut() >= 1  # the service's pooled connections
    answers = [service.eta(o) for o in orders[:5]]
    service.wait(lambda: service.answers_with_model(orders[0]), "the model to answer again")

    assert set(_reasons(answers)) <= {None, "store_unavailable"}
    assert redis_proxy.accepted > accepted
    assert service.ready() == 200


def test_an_empty_store_answers_stale_features_and_health_says_so(
    healthy_service: ServiceProbe, redis: RedisServer, fault_data: Any, refill: Any
) -> None:
    import redis as redis_client

    service, orders = healthy_service, fault_data.orders
    client = redis_client.Redis.from_url(redis.url)
    client.flushall()
    try:
        answers = [service.eta(o) for o in orders]
        ready, health = service.ready(), service.health()
    finally:
        client.close()
        refill(redis)

    assert _reasons(answers) == ["stale_features"] * len(orders)
    assert all(a["stale_features"] for a in answers)
    assert ready == 200
    assert health["store"] == "up"
    assert health["status"] == "degraded"
    assert health["recent_fallbacks"]["stale_features"] >= len(orders)
    assert any("answers from the heuristic" in p for p in health["problems"])


def test_overload_sheds_to_the_heuristic_and_stays_ready(
    start_service: Any, redis_proxy: TcpProxy, fault_data: Any
) -> None:
    url = f"redis://127.0.0.1:{redis_proxy.port}/0"
    service = start_service(
        {
            "ARRIVE_STORE_URL": url,
            "ARRIVE_MAX_IN_FLIGHT": "2",
            "ARRIVE_ADMISSION_WAIT_MS": "0",  # shed at once: no queue
            "ARRIVE_DEADLINE_MS": "10000",
            "ARRIVE_STORE_TIMEOUT_MS": "20000",
        }
    )
    orders = fault_data.orders[:24]
    redis_proxy.add_latency(1.0)  # each admitted request holds its place for 2 s
    try:
        with ThreadPoolExecutor(len(orders) + 1) as pool:
            pending = [pool.submit(service.eta, o) for o in orders]
            ready = pool.submit(service.ready).result()
            answers = [p.result() for p in pending]
    finally:
        redis_proxy.restore()
    shed = service.metric("arrive_predictions_total", fallback="overload")

    reasons = _reasons(answers)
    assert reasons.count("overload") >= len(orders) // 2
    assert reasons.count(None) >= 1
    assert set(reasons) <= {None, "overload"}
    assert shed == reasons.count("overload")
    assert ready == 200
