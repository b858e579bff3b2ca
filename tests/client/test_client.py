"""The client against a scripted local server: each fault gives its typed error, and
only connection failures and 503 are retried (with the same request id)."""

from __future__ import annotations

import asyncio
import random

import pytest
from tests.client.conftest import Scripted

from arrive.client import (
    AsyncEtaClient,
    BadResponse,
    EtaClient,
    RequestRejected,
    Retry,
    ServerError,
    ServerUnavailable,
    Timeout,
)
from arrive.clock import ManualClock
from arrive.errors import ArriveError, UserError
from arrive.testing.servers.ports import free_port

ORDER = {"order_id": "o-1", "store_id": "s-1", "items": 3}
QUICK = Retry(attempts=3, backoff_s=0.001, max_backoff_s=0.002, rng=random.Random(1))


def client(url: str, **kwargs: object) -> EtaClient:
    return EtaClient(url, retry=QUICK, **kwargs)  # type: ignore[arg-type]


def test_an_answer_is_typed(scripted: Scripted) -> None:
    with client(scripted.url) as eta:
        answer = eta.predict(ORDER)
    assert (answer.order_id, answer.p50_s, answer.p90_s) == ("o-1", 1200.0, 1800.0)
    assert scripted.asked[0][2] == ORDER  # absent fields are not sent


def test_503_is_retried_with_the_same_request_id(scripted: Scripted) -> None:
    scripted.error(503, "draining").error(503, "draining")
    with client(scripted.url) as eta:
        answer = eta.predict(ORDER)
    assert answer.order_id == "o-1"
    rids = {rid for _, rid, _ in scripted.asked}
    assert len(scripted.asked) == 3
    assert len(rids) == 1


def test_503_on_every_attempt_is_server_unavailable(scripted: Scripted) -> None:
    for _ in range(3):
        scripted.error(503, "overloaded")
    with client(scripted.url) as eta, pytest.raises(ServerUnavailable, match="overloaded"):
        eta.predict(ORDER)
    assert len(scripted.asked) == 3


def test_500_is_a_server_error_and_not_retried(scripted: Scripted) -> None:
    scripted.error(500, "internal error (request id rid-srv)")
    with client(scripted.url) as eta, pytest.raises(ServerError) as caught:
        eta.predict(ORDER)
    assert caught.value.status == 500
    assert caught.value.request_id == "rid-srv"
    assert len(scripted.asked) == 1


def test_422_names_the_field_and_is_not_retried(scripted: Scripted) -> None:
    scripted.error(422, "pickup_lat: Expected `float` <= 90.0", "pickup_lat")
    with client(scripted.url) as eta, pytest.raises(RequestRejected) as caught:
        eta.predict(ORDER)
    assert (caught.value.field, caught.value.status) == ("pickup_lat", 422)
    assert "<= 90.0" in caught.value.reason
    assert isinstance(caught.value, UserError)
    assert len(scripted.asked) == 1


def test_an_order_that_does_not_fit_is_refused_before_sending(scripted: Scripted) -> None:
    with client(scripted.url) as eta, pytest.raises(RequestRejected) as caught:
        eta.predict({"order_id": "o-1", "items": -1})
    assert caught.value.field == "items"
    assert caught.value.status is None
    assert scripted.asked == []


@pytest.mark.parametrize("body", ["<html>oops</html>", '{"order_id": "o-1"}', ""])
def test_garbage_is_a_bad_response(scripted: Scripted, body: str) -> None:
    scripted.then(200, body)
    with client(scripted.url) as eta, pytest.raises(BadResponse):
        eta.predict(ORDER)


def test_a_slow_server_hits_the_deadline(scripted: Scripted) -> None:
    scripted.then(200, b"{}", delay_s=3.0)
    with client(scripted.url, timeout_s=0.2, deadline_s=0.2) as eta, pytest.raises(Timeout):
        eta.predict(ORDER)


def test_a_server_down_is_unavailable_after_the_retries() -> None:
    with (
        client(f"http://127.0.0.1:{free_port()}") as eta,
        pytest.raises(ServerUnavailable) as caught,
    ):
        eta.predict(ORDER)
    assert not isinstance(caught.value, Timeout)
    assert isinstance(caught.value, ArriveError)


def test_back_off_past_the_deadline_is_a_timeout() -> None:
    clock = ManualClock()
    slow = Retry(attempts=10, backoff_s=5.0, max_backoff_s=5.0, rng=random.Random(3))
    with (
        EtaClient(
            f"http://127.0.0.1:{free_port()}", retry=slow, deadline_s=6.0, clock=clock
        ) as eta,
        pytest.raises(Timeout, match="deadline"),
    ):
        eta.predict(ORDER)
    assert clock.monotonic() < 6.0  # never slept past the deadline


def test_the_back_off_is_jittered_and_capped() -> None:
    retry = Retry(backoff_s=0.1, max_backoff_s=0.3, rng=random.Random(0))
    delays = [retry.delay(attempt) for attempt in (1, 2, 3, 4, 5, 6) for _ in range(50)]
    assert max(delays) <= 0.3
    assert len(set(delays)) > 100
    assert retry.delay(1, retry_after=2.0) == 2.0


def test_predict_many_splits_into_batches_of_max_batch(scripted: Scripted) -> None:
    orders = [{"order_id": f"o-{i}"} for i in range(7)]
    with client(scripted.url) as eta:
        answers = eta.predict_many(orders)
    assert [a.order_id for a in answers] == [o["order_id"] for o in orders]
    assert [len(body["orders"]) for path, _, body in scripted.asked] == [3, 3, 1]


def test_predict_many_names_the_order_that_does_not_fit(scripted: Scripted) -> None:
    orders = [{"order_id": "a"}, {"order_id": "b", "drop_lat": 91.0}]
    with client(scripted.url) as eta, pytest.raises(RequestRejected) as caught:
        eta.predict_many(orders)
    assert caught.value.field == "orders[1].drop_lat"


def test_a_batch_answer_of_the_wrong_length_is_a_bad_response(scripted: Scripted) -> None:
    scripted.then(200, '{"answers": []}')
    with client(scripted.url) as eta, pytest.raises(BadResponse, match="1 orders sent, 0"):
        eta.predict_many([ORDER])


def test_model_info_reads_the_batch_limit_and_health(scripted: Scripted) -> None:
    scripted.max_batch = 5
    with client(scripted.url) as eta:
        info = eta.model_info()
    assert (info.max_batch, info.model_version, info.api_version) == (5, "7", "1.0.0")


# -- the asyncio client ---------------------------------------------------------------------


def test_the_async_client_retries_503_and_types_a_422(scripted: Scripted) -> None:
    scripted.error(503, "starting").error(422, "items: too many", "items")

    async def run() -> None:
        async with AsyncEtaClient(scripted.url, retry=QUICK) as eta:
            with pytest.raises(RequestRejected) as caught:
                await eta.predict(ORDER)
            assert caught.value.field == "items"
            answers = await eta.predict_many([{"order_id": f"o-{i}"} for i in range(5)])
            assert [a.order_id for a in answers] == [f"o-{i}" for i in range(5)]

    asyncio.run(run())
    assert len(scripted.asked) == 4  # 503, 422, then two batches


def test_the_async_client_times_out_on_a_slow_server(scripted: Scripted) -> None:
    scripted.then(200, b"{}", delay_s=3.0)

    async def run() -> None:
        async with AsyncEtaClient(scripted.url, deadline_s=0.2) as eta:
            await eta.predict(ORDER)

    with pytest.raises(Timeout):
        asyncio.run(run())
