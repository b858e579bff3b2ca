"""The synchronous ETA client: one pooled httpx connection pool per client."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import httpx
import msgspec

from arrive.client.attempts import Attempts, Pause, Policy, new_request_id
from arrive.client.bulk import BulkResult, ClientConfig, bulk_predict
from arrive.client.calls import Order, Retry, decoded, to_request, to_requests
from arrive.client.errors import BadResponse
from arrive.client.info import ModelInfo, max_batch_of, model_info_of
from arrive.client.sources import Source
from arrive.clock import SleepingClock, SystemClock
from arrive.schema.api import BatchAnswer, BatchRequest, Readiness
from arrive.schema.eta import EtaAnswer, EtaRequest, Health

T = TypeVar("T")

_answer: Final = msgspec.json.Decoder(EtaAnswer)
_batch: Final = msgspec.json.Decoder(BatchAnswer)
_health: Final = msgspec.json.Decoder(Health)
_readiness: Final = msgspec.json.Decoder(Readiness)
_document: Final = msgspec.json.Decoder(dict[str, Any])
_encoder: Final = msgspec.json.Encoder()


class EtaClient:
    """The ETA service at ``url``, over a pool of keep-alive connections.

    Args:
        url: the service's base URL (``http://host:8000``).
        timeout_s: the longest wait for one attempt (connect, send, answer).
        deadline_s: the longest a call may take, retries and back-off included.
        retry: how connection failures and 503s are retried.
        pool_size: connections kept open at most.
        clock: the clock of deadlines and back-off (tests pass a manual one).
        transport: an httpx transport (tests pass a mock one; default: TCP).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        deadline_s: float = 30.0,
        retry: Retry | None = None,
        pool_size: int = 10,
        clock: SleepingClock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if timeout_s <= 0 or deadline_s <= 0:
            raise ValueError("timeout_s, deadline_s: must be positive")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.retry = retry or Retry()
        self.clock = clock or SystemClock()
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout_s,
            limits=limits,
            transport=transport,
            headers={"content-type": "application/json", "accept": "application/json"},
        )
        self._max_batch: int | None = None

    @property
    def _policy(self) -> Policy:
        return Policy(self.timeout_s, self.deadline_s, self.retry)

    # -- the API -------------------------------------------------------------------------

    def predict(self, order: Order, *, request_id: str | None = None) -> EtaAnswer:
        """The ETA of one order (a mapping of the request's fields, or an ``EtaRequest``).

        Raises:
            RequestRejected: the order does not fit the API (before sending), or a 4xx.
            ServerUnavailable, Timeout, ServerError, BadResponse: see :mod:`.errors`.
        """
        body = _encoder.encode(to_request(order))
        return self._call("POST", "/v1/eta", body, _answer, request_id)

    def predict_many(self, orders: Iterable[Order]) -> list[EtaAnswer]:
        """The ETAs of ``orders``, in order, in batches of the server's ``max_batch``."""
        requests = to_requests(orders)
        answers: list[EtaAnswer] = []
        size = self.max_batch()
        for start in range(0, len(requests), size):
            answers.extend(self._batch(requests[start : start + size]))
        return answers

    def predict_batch(
        self, orders: list[EtaRequest], request_id: str | None = None
    ) -> list[EtaAnswer]:
        """One ``/v1/eta/batch`` call (at most :meth:`max_batch` orders, already requests)."""
        return self._batch(orders, request_id)

    def post_batch(
        self, body: bytes, decoder: msgspec.json.Decoder[T], request_id: str | None = None
    ) -> T:
        """One ``/v1/eta/batch`` call of a body already encoded (``{"orders": [...]}``),
        its answer decoded by ``decoder``: bulk runs encode straight from columns and
        decode only the columns they keep."""
        return self._call("POST", "/v1/eta/batch", body, decoder, request_id)

    def bulk_predict(
        self,
        source: Source,
        *,
        processes: int = 2,
        batch_size: int = 256,
        in_flight: int = 1,
        out: str | os.PathLike[str] | None = None,
        progress: bool = True,
    ) -> BulkResult:
        """Score every order of ``source``, ``batch_size`` orders a request and
        ``in_flight`` requests on the wire: in ``processes`` worker processes, each with
        its own pool (this client's timeout, deadline and retries), or with one, on
        threads of this process. One result row per input row, in input
        order, with a ``status`` (``ok``, ``rejected``, ``error``) and the ``error``.
        With ``out`` (.jsonl, .csv or .parquet) the results are written there, and a
        re-run skips rows answered. See :mod:`arrive.client.bulk`."""
        config = ClientConfig(self.url, self.timeout_s, self.deadline_s, self.retry)
        path = None if out is None else Path(out)
        return bulk_predict(
            config,
            source,
            processes=processes,
            batch_size=batch_size,
            in_flight=in_flight,
            out=path,
            progress=progress,
        )

    def health(self) -> Health:
        """``/healthz``: the process is alive, and how its dependencies fare."""
        return self._call("GET", "/healthz", None, _health)

    def ready(self) -> Readiness:
        """``/readyz``, once (a 503 is an answer here: not ready, and why)."""
        response = self._send("GET", "/readyz", None, new_request_id(), self.timeout_s)
        if response.status_code not in (200, 503):
            raise BadResponse(
                f"/readyz answered {response.status_code}", status=response.status_code
            )
        return decoded(_readiness, response.content)

    def model_info(self) -> ModelInfo:
        """The model serving, the API's version and its batch limit."""
        document = self._call("GET", "/openapi.json", None, _document)
        self._max_batch = max_batch_of(document)
        return model_info_of(document, self.health())

    def max_batch(self) -> int:
        """The most orders a batch may hold (read once from ``/openapi.json``)."""
        if self._max_batch is None:
            self._max_batch = max_batch_of(self._call("GET", "/openapi.json", None, _document))
        return self._max_batch

    def close(self) -> None:
        """Close the pool's connections."""
        self._http.close()

    def __enter__(self) -> EtaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- one call, retried -----------------------------------------------------------------

    def _batch(self, orders: list[EtaRequest], request_id: str | None = None) -> list[EtaAnswer]:
        body = _encoder.encode(BatchRequest(orders=orders))
        answers = self.post_batch(body, _batch, request_id).answers
        if len(answers) != len(orders):
            raise BadResponse(f"{len(orders)} orders sent, {len(answers)} answers received")
        return answers

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None,
        decoder: msgspec.json.Decoder[T],
        request_id: str | None = None,
    ) -> T:
        rid = request_id or new_request_id()
        attempts = Attempts(self._policy, self.clock, f"{self.url}{path}", rid)
        while True:
            timeout = attempts.start()
            try:
                response = self._send(method, path, body, rid, timeout)
            except httpx.HTTPError as exc:
                pause = attempts.failed(exc)
            else:
                result = attempts.answered(response, decoder)
                if not isinstance(result, Pause):
                    return result
                pause = result.seconds
            self.clock.sleep_until(self.clock.monotonic() + pause)

    def _send(
        self, method: str, path: str, body: bytes | None, rid: str, timeout_s: float
    ) -> httpx.Response:
        return self._http.request(
            method, path, content=body, headers={"x-request-id": rid}, timeout=timeout_s
        )
