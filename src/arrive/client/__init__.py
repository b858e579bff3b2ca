"""The Python client of the ETA service: sync, asyncio, and bulk over several processes.

::

    from arrive.client import EtaClient

    with EtaClient("http://127.0.0.1:8000") as client:
        answer = client.predict({"order_id": "o-1", "store_id": "s-9", "items": 3})
        print(answer.p50_s, answer.p90_s)

It speaks the API with the service's own types (:mod:`arrive.schema`), so the two
cannot drift; its errors are :mod:`arrive.client.errors`'s. Nothing in the service
imports it. See docs/client.md.
"""

from arrive.client.aio import AsyncEtaClient
from arrive.client.bulk import BulkResult
from arrive.client.calls import Retry
from arrive.client.errors import (
    BadResponse,
    ClientError,
    RequestRejected,
    ServerError,
    ServerUnavailable,
    Timeout,
)
from arrive.client.info import ModelInfo
from arrive.client.sync import EtaClient
from arrive.schema.eta import EtaAnswer, EtaRequest

__all__ = [
    "AsyncEtaClient",
    "BadResponse",
    "BulkResult",
    "ClientError",
    "EtaAnswer",
    "EtaClient",
    "EtaRequest",
    "ModelInfo",
    "RequestRejected",
    "Retry",
    "ServerError",
    "ServerUnavailable",
    "Timeout",
]
