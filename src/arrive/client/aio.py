"""The asyncio ETA client: :class:`~arrive.client.sync.EtaClient`'s API, awaitable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Final, TypeVar

import httpx
import msgspec

from arrive.client.attempts import Attempts, Pause, Policy, new_request_id
from arrive.client.calls import Order, Retry, decoded, to_request, to_requests
from arrive.client.errors import BadResponse
from arrive.client.info import ModelInfo, max_batch_of, model_info_of
from arrive.clock import Clock, SystemClock
from arrive.schema.api import BatchAnswer, BatchRequest, Readiness
from arrive.schema.eta import EtaAnswer, EtaRequest, Health

T = TypeVar("T")

_answer: Final = msgspec.json.Decoder(EtaAnswer)
_batch: Final = msgspec.json.Decoder(BatchAnswer)
_health: Final = msgspec.json.Decoder(Health)
_readiness: Final = msgspec.json.Decoder(Readiness)
_document: Final = msgspec.json.Decoder(dict[str, Any])
_encoder: Final = msgspec.json.Encoder()


class AsyncEtaClient:
    """The ETA service at ``url``, from asyncio code (one pool per client).

    Arguments as :class:`~arrive.client.sync.EtaClient`'s, plus ``concurrency``: the
    batches :meth:`predict_many` keeps in flight at once; ``sleep`` waits the back-off.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        deadline_s: float = 30.0,
        retry: Retry | None = None,
        pool_size: int = 10,
        concurrency: int = 4,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if timeout_s <= 0 or deadline_s <= 0:
            raise ValueError("timeout_s, deadline_s: must be positive")
        if concurrency < 1:
            raise ValueError("concurrency: must be at least 1")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.retry = retry or Retry()
        self.concurrency = concurrency
        self.clock = clock or SystemClock()
        self._sleep = sleep
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
        self._http = httpx.AsyncClient(
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

    async def predict(self, order: Order, *, request_id: str | None = None) -> EtaAnswer:
        """The ETA of one order (see :meth:`EtaClient.predict`)."""
        body = _encoder.encode(to_request(order))
        return await self._call("POST", "/v1/eta", body, _answer, request_id)

    async def predict_many(self, orders: Iterable[Order]) -> list[EtaAnswer]:
        """The ETAs of ``orders``, in order: batches of ``max_batch``, ``concurrency`` at once."""
        requests = to_requests(orders)
        size = await self.max_batch()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(chunk: list[EtaRequest]) -> list[EtaAnswer]:
            async with gate:
                return await self._batch(chunk)

        chunks = [requests[i : i + size] for i in range(0, len(requests), size)]
        done = await asyncio.gather(*(one(chunk) for chunk in chunks))
        return [answer for answers in done for answer in answers]

    async def health(self) -> Health:
        """``/healthz``."""
        return await self._call("GET", "/healthz", None, _health)

    async def ready(self) -> Readiness:
        """``/readyz``, once (a 503 is an answer: not ready, and why)."""
        response = await self._send("GET", "/readyz", None, new_request_id(), self.timeout_s)
        if response.status_code not in (200, 503):
            raise BadResponse(
                f"/readyz answered {response.status_code}", status=response.status_code
            )
        return decoded(_readiness, response.content)

    async def model_info(self) -> ModelInfo:
        """The model serving, the API's version and its batch limit."""
        document = await self._call("GET", "/openapi.json", None, _document)
        self._max_batch = max_batch_of(document)
        return model_info_of(document, await self.health())

    async def max_batch(self) -> int:
        """The most orders a batch may hold (read once from ``/openapi.json``)."""
        if self._max_batch is None:
            document = await self._call("GET", "/openapi.json", None, _document)
            self._max_batch = max_batch_of(document)
        return self._max_batch

    async def aclose(self) -> None:
        """Close the pool's connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncEtaClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _batch(self, orders: list[EtaRequest]) -> list[EtaAnswer]:
        body = _encoder.encode(BatchRequest(orders=orders))
        answers = (await self._call("POST", "/v1/eta/batch", body, _batch)).answers
        if len(answers) != len(orders):
            raise BadResponse(f"{len(orders)} orders sent, {len(answers)} answers received")
        return answers

    async def _call(
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
                response = await self._send(method, path, body, rid, timeout)
            except httpx.HTTPError as exc:
                pause = attempts.failed(exc)
            else:
                result = attempts.answered(response, decoder)
                if not isinstance(result, Pause):
                    return result
                pause = result.seconds
            await self._sleep(pause)

    async def _send(
        self, method: str, path: str, body: bytes | None, rid: str, timeout_s: float
    ) -> httpx.Response:
        return await self._http.request(
            method, path, content=body, headers={"x-request-id": rid}, timeout=timeout_s
        )
