"""The bare path the ETA service is measured against, in the same run on the same machine.

What the issue's reference figure measured ("a bare Starlette + MGET + compiled-model
path"), for the same orders and the same Redis: raw ASGI on uvicorn (httptools,
uvloop), the body decoded with msgspec, the order's six feature rows read with one
MGET through redis-py's asyncio client (hiredis), unpacked with msgspec, the model's
stored numeric features looked up in them, both quantiles through the same lleaves
code, and a JSON answer. Nothing else: no validation beyond what decoding needs, no
request-time features (distance, calendar, travel estimate), no staleness rules,
deadline, fallback, load shedding, prediction log, metrics or request id.

Because the host's speed drifts a lot between runs, ``serve_bench.py`` runs this
and the service phase by phase, one after the other, so each of the service's runs has
a baseline taken under the same conditions.

Started by ``serve_bench.py`` as ``uvicorn --factory bare_path:create --workers 2``; it
reads ``BARE_REGISTRY`` (the registry whose production model serves), ``BARE_CACHE``
(the compiled-tree cache the service filled) and ``BARE_REDIS`` (the store's URL).
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
import redis.asyncio

from arrive.models.artifact import ModelBundle
from arrive.registry import LocalRegistry
from arrive.schema.eta import P50, P90, quantile_index
from arrive.serving.compiled import CompiledModel
from arrive.store.keys import KeyLayout

_ORDER = msgspec.json.Decoder(dict[str, Any])
_ROW = msgspec.msgpack.Decoder(dict[str, tuple[Any, int]])
_BATCH = msgspec.json.Decoder(dict[str, list[dict[str, Any]]])


def create() -> Any:
    """The ASGI app (a uvicorn factory)."""
    bundle = ModelBundle.from_files(
        LocalRegistry(os.environ["BARE_REGISTRY"]).open("production").files
    )
    compiled = CompiledModel(bundle.model, "lleaves", cache_dir=os.environ["BARE_CACHE"])
    compiled.start_compiling()
    if not compiled.wait(600) or not compiled.compiled:
        raise RuntimeError(f"no compiled trees in the cache: {compiled.error}")
    return _App(compiled, redis.asyncio.from_url(os.environ["BARE_REDIS"]))


class _App:
    def __init__(self, compiled: CompiledModel, client: Any) -> None:
        self.features = compiled.encoder.features
        self.trees = compiled.trees
        self.client = client
        self.key = KeyLayout().feature_key
        self.p50 = quantile_index(compiled.quantiles, P50, "bare path")
        self.p90 = quantile_index(compiled.quantiles, P90, "bare path")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":  # the readiness probe of serve_bench.py
            await _reply(send, b"{}")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/v1/eta/batch":
            answer = await self._answer(_BATCH.decode(body)["orders"])
        else:
            answer = (await self._answer([_ORDER.decode(body)]))[0]
        await _reply(send, msgspec.json.encode(answer))

    async def _answer(self, orders: list[dict[str, Any]]) -> list[dict[str, float]]:
        day = datetime.now(UTC).date().isoformat()
        keys = [self.key(("pipeline", "engine"))]
        for order in orders:
            market = order.get("market_id")
            keys += [
                self.key(("store", order.get("store_id"))),
                self.key(("day", day)),
                self.key(("market_day", f"{market}|{day}")),
                self.key(("market", market)),
                self.key(("courier", order.get("courier_id"))),
            ]
        packed = await self.client.mget(keys)
        rows = [_ROW.decode(data) if data else {} for data in packed]
        matrix = np.empty((len(orders), len(self.features)))
        for i in range(len(orders)):
            found: dict[str, tuple[Any, int]] = {}
            for row in rows[1 + 5 * i : 6 + 5 * i]:
                found.update(row)
            matrix[i] = [_number(found.get(name)) for name in self.features]
        out = self.trees.predict_raw(matrix)
        return [{"p50_s": float(q[self.p50]), "p90_s": float(q[self.p90])} for q in out]


async def _reply(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _number(cell: tuple[Any, int] | None) -> float:
    if cell is None or not isinstance(cell[0], float):
        return math.nan
    return cell[0]
