"""The attempts of one call: every retry decision, for the sync and the async client.

:class:`Attempts` holds a call's deadline and attempt count and decides, after each
attempt, whether the call is over (an answer, or a typed error raised) or how long to
wait before the next one (see :mod:`arrive.client.calls` for what is retried). It does
no IO: the clients' loops only send, and sleep the pause it gives, each its own way::

    attempts = Attempts(policy, clock, where, request_id)
    while True:
        timeout = attempts.start()  # Timeout once the deadline has passed
        try:
            response = send(timeout)
        except httpx.HTTPError as exc:
            pause = attempts.failed(exc)  # raises unless it is retried
        else:
            result = attempts.answered(response, decoder)  # the value, or a Pause
            if not isinstance(result, Pause):
                return result
            pause = result.seconds
        sleep(pause)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final, TypeVar

import httpx
import msgspec

from arrive.client.calls import Retry, outcome, retry_after
from arrive.client.errors import ClientError, ServerUnavailable, Timeout
from arrive.clock import Clock

T = TypeVar("T")

RETRIED: Final = (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ConnectTimeout)
"""Transport failures that are retried (the request may not have reached the server)."""


def new_request_id() -> str:
    """A fresh request id (the same for every attempt of one call)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Policy:
    """How long a call may take, and how it is retried (a client's settings)."""

    timeout_s: float
    deadline_s: float
    retry: Retry


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds``, then make the next attempt."""

    seconds: float


class Attempts:
    """The attempts of one call to ``where`` (``url`` + path), with request id ``rid``."""

    def __init__(self, policy: Policy, clock: Clock, where: str, rid: str) -> None:
        self.policy = policy
        self.clock = clock
        self.where = where
        self.rid = rid
        self.attempt = 0
        self.deadline = clock.monotonic() + policy.deadline_s
        self._timeout = policy.timeout_s

    def start(self) -> float:
        """Begin the next attempt: its timeout, within the deadline.

        Raises:
            Timeout: the deadline has passed.
        """
        remaining = self.deadline - self.clock.monotonic()
        if remaining <= 0:
            raise Timeout(
                f"{self.where}: the deadline of {self.policy.deadline_s} s passed",
                request_id=self.rid,
            )
        self.attempt += 1
        self._timeout = min(self.policy.timeout_s, remaining)
        return self._timeout

    def failed(self, exc: httpx.HTTPError) -> float:
        """The pause before the next attempt after the transport failed with ``exc``.

        Raises:
            ServerUnavailable: a connection failure on the last attempt.
            Timeout: no answer within the attempt's timeout, or no time left to retry.
            ClientError: any other transport failure (not retried).
        """
        if isinstance(exc, RETRIED):
            failure = ServerUnavailable(
                f"{self.where}: {type(exc).__name__}: {exc}", request_id=self.rid
            )
            return self._retried(failure, None)
        if isinstance(exc, httpx.TimeoutException):
            raise Timeout(
                f"{self.where}: no answer within {self._timeout:.3g} s", request_id=self.rid
            ) from exc
        raise ClientError(f"{self.where}: {exc}", request_id=self.rid) from exc

    def answered(self, response: httpx.Response, decoder: msgspec.json.Decoder[T]) -> T | Pause:
        """The decoded answer, or the pause before the next attempt after a 503.

        Raises:
            ClientError: the answer is an error that is not retried (its typed subclass),
                or a 503 on the last attempt or with no time left to retry.
        """
        result = outcome(response.status_code, response.content, decoder, self.rid)
        if isinstance(result, ServerUnavailable):
            return Pause(self._retried(result, retry_after(response.headers)))
        if isinstance(result, ClientError):
            raise result
        return result

    def _retried(self, failure: ClientError, wait: float | None) -> float:
        if self.attempt >= self.policy.retry.attempts:
            raise failure
        pause = self.policy.retry.delay(self.attempt, wait)
        if self.clock.monotonic() + pause >= self.deadline:
            raise Timeout(
                f"the deadline of {self.policy.deadline_s} s passes before attempt "
                f"{self.attempt + 1}; last: {failure}",
                request_id=self.rid,
            ) from failure
        return pause
