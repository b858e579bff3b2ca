"""The retry decisions both clients share (:class:`arrive.client.attempts.Attempts`),
without IO: answers are plain ``httpx.Response`` values, time a manual clock."""

from __future__ import annotations

import random

import httpx
import msgspec
import pytest

from arrive.client import RequestRejected, Retry, ServerError, ServerUnavailable, Timeout
from arrive.client.attempts import Attempts, Pause, Policy
from arrive.client.errors import ClientError
from arrive.clock import ManualClock
from arrive.schema.api import ErrorBody

_dict = msgspec.json.Decoder(dict[str, int])


def _attempts(attempts: int = 3, deadline_s: float = 60.0, backoff_s: float = 0.5) -> Attempts:
    retry = Retry(attempts=attempts, backoff_s=backoff_s, max_backoff_s=4.0, rng=random.Random(1))
    policy = Policy(timeout_s=10.0, deadline_s=deadline_s, retry=retry)
    return Attempts(policy, ManualClock(), "http://eta/v1/eta", "rid-1")


def _error(status: int, field: str | None = None) -> httpx.Response:
    body = ErrorBody(error="x", message="no", field=field, request_id="rid-srv")
    return httpx.Response(status, content=msgspec.json.encode(body))


def test_a_200_is_the_decoded_answer() -> None:
    attempts = _attempts()
    attempts.start()
    assert attempts.answered(httpx.Response(200, content=b'{"a": 1}'), _dict) == {"a": 1}


def test_a_503_pauses_within_the_back_off_then_gives_up_on_the_last_attempt() -> None:
    attempts = _attempts(attempts=3)
    pauses = []
    for _ in range(2):
        attempts.start()
        result = attempts.answered(_error(503), _dict)
        assert isinstance(result, Pause)
        pauses.append(result.seconds)
    attempts.start()
    with pytest.raises(ServerUnavailable) as caught:
        attempts.answered(_error(503), _dict)
    assert not isinstance(caught.value, Timeout)
    assert 0 <= pauses[0] <= 0.5  # full jitter under the first cap
    assert 0 <= pauses[1] <= 1.0  # then twice that


def test_retry_after_is_honoured_when_longer_than_the_back_off() -> None:
    attempts = _attempts()
    attempts.start()
    response = httpx.Response(503, content=b"busy", headers={"retry-after": "7"})
    assert attempts.answered(response, _dict) == Pause(7.0)


def test_4xx_and_500_are_raised_at_once() -> None:
    attempts = _attempts()
    attempts.start()
    with pytest.raises(RequestRejected) as rejected:
        attempts.answered(_error(422, "items"), _dict)
    assert rejected.value.field == "items"
    with pytest.raises(ServerError):
        attempts.answered(_error(500), _dict)


def test_connection_failures_are_retried_and_other_transport_errors_are_not() -> None:
    attempts = _attempts(attempts=2)
    attempts.start()
    refused = httpx.ConnectError("refused")
    assert attempts.failed(refused) >= 0.0
    attempts.start()
    with pytest.raises(ServerUnavailable, match="ConnectError"):
        attempts.failed(refused)
    with pytest.raises(Timeout, match="no answer within 10 s"):
        attempts.failed(httpx.ReadTimeout("slow"))
    with pytest.raises(ClientError) as caught:
        attempts.failed(httpx.UnsupportedProtocol("ftp"))
    assert not isinstance(caught.value, ServerUnavailable)


def test_a_pause_past_the_deadline_is_a_timeout_and_the_timeout_shrinks_to_it() -> None:
    attempts = _attempts(attempts=5, deadline_s=3.0, backoff_s=4.0)
    assert attempts.start() == 3.0  # the deadline is nearer than the 10 s timeout
    with pytest.raises(Timeout, match="passes before attempt 2"):
        attempts.answered(httpx.Response(503, headers={"retry-after": "5"}), _dict)


def test_no_attempt_starts_after_the_deadline() -> None:
    attempts = _attempts(deadline_s=3.0)
    attempts.start()
    assert isinstance(attempts.clock, ManualClock)
    attempts.clock.advance(3.0)
    with pytest.raises(Timeout, match=r"the deadline of 3\.0 s passed"):
        attempts.start()
