"""The bare path the ETA service is measured against, in the same run on the same machine.

What the issue's reference figure measured ("a bare Starlette + MGET + compiled-model
path"), for the same orders and the same Redis: raw ASGI on uvicorn (httptools,
uvloop), the body decoded with msgspec, the order's six feature rows read with one
MGET through redis-py's asyncio client (hiredis), unpacked with msgspec, the model's
stored features looked up in them, both quantiles through the same lleaves code and
the model's calibration, and a JSON answer. Nothing else: no validation beyond what
decoding needs, no request-time features (distance, calendar, travel estimate, the
order's attributes: the model sees them as unknown), no staleness rules, deadline,
fallback, load shedding, prediction log, metrics or request id.

Its answers are the model's on those inputs: :func:`check` compares them with an
offline prediction (the stored rows read through the store, a Polars frame, the
model's own ``predict`` with LightGBM) before a benchmark measures it. Stored numbers
come back from Redis as integers when they are whole (the store's merge script packs
them so), so the rows are decoded as the store decodes them, numbers as floats.

Because the host's speed drifts a lot between runs, ``serve_bench.py`` runs this
and the service phase by phase, one after the other, so each of the service's runs has
a baseline taken under the same conditions.

Started by ``serve_bench.py`` as ``uvicorn --factory bare_path:create --workers 2``; it
reads ``BARE_REGISTRY`` (the registry whose production model serves), ``BARE_CACHE``
(the compiled-tree cache the service filled), ``BARE_REDIS`` (the store's URL) and
``BARE_BACKEND`` (``lleaves``, the default, or ``none`` for plain LightGBM).
"""

from __future__ import annotations

import json
import math
import os
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import polars as pl
import redis.asyncio

from arrive.models.artifact import ModelBundle
from arrive.registry import LocalRegistry
from arrive.schema.eta import P50, P90, quantile_index
from arrive.serving.compiled import Backend, CompiledModel
from arrive.store.base import EntityKey
from arrive.store.keys import KeyLayout
from arrive.store.redis import RedisStore, RedisStoreConfig

ENTITIES = 5
"""Rows per order after the engine's own: store, day, market-day, market, courier."""
_ORDER = msgspec.json.Decoder(dict[str, Any])
_ROW = msgspec.msgpack.Decoder(dict[str, tuple[float | str | None, int]])  # as the store's
_BATCH = msgspec.json.Decoder(dict[str, list[dict[str, Any]]])


def create() -> Any:
    """The ASGI app (a uvicorn factory)."""
    bundle = production(os.environ["BARE_REGISTRY"])
    backend = cast(Backend, os.environ.get("BARE_BACKEND", "lleaves"))
    compiled = CompiledModel(bundle.model, backend, cache_dir=Path(os.environ["BARE_CACHE"]))
    compiled.start_compiling()
    if backend != "none" and (not compiled.wait(600) or not compiled.compiled):
        raise RuntimeError(f"no compiled trees in the cache: {compiled.error}")
    return _App(compiled, zone(bundle), redis.asyncio.from_url(os.environ["BARE_REDIS"]))


def production(registry: str | Path) -> ModelBundle:
    """The production model of ``registry``."""
    return ModelBundle.from_files(LocalRegistry(registry).open("production").files)


def zone(bundle: ModelBundle) -> tzinfo:
    """The marketplace's zone (the engine keys days by its local date)."""
    return ZoneInfo(str(bundle.features.get("local_timezone") or "UTC"))


def order_keys(order: Mapping[str, Any], day: str) -> list[EntityKey]:
    """The :data:`ENTITIES` rows an order's stored features are in (after the engine's)."""
    market = order.get("market_id")
    return [
        ("store", str(order.get("store_id"))),
        ("day", day),
        ("market_day", f"{market}|{day}"),
        ("market", str(market)),
        ("courier", str(order.get("courier_id"))),
    ]


def stored(rows: Sequence[Mapping[str, Sequence[Any]]], names: Sequence[str]) -> list[float]:
    """The stored numbers of ``names`` in an order's ``rows`` (NaN when absent or text)."""
    found: dict[str, Sequence[Any]] = {}
    for row in rows:
        found.update(row)
    return [_number(found.get(name)) for name in names]


class _App:
    def __init__(self, compiled: CompiledModel, where: tzinfo, client: Any) -> None:
        self.features = compiled.encoder.features
        self.compiled = compiled
        self.zone = where
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
        day = datetime.now(self.zone).date().isoformat()
        keys = [self.key(("pipeline", "engine"))]
        for order in orders:
            keys += [self.key(entity) for entity in order_keys(order, day)]
        packed = await self.client.mget(keys)
        rows = [_ROW.decode(data) if data else {} for data in packed]
        matrix = np.empty((len(orders), len(self.features)))
        for i in range(len(orders)):
            matrix[i] = stored(rows[1 + ENTITIES * i : 1 + ENTITIES * (i + 1)], self.features)
        out = self.compiled.predict_matrix(matrix)
        return [{"p50_s": float(q[self.p50]), "p90_s": float(q[self.p90])} for q in out]


async def _reply(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _number(cell: Sequence[Any] | None) -> float:
    if cell is None or not isinstance(cell[0], float):
        return math.nan
    return cell[0]


# -- the check against an offline prediction -----------------------------------------------


def offline(
    bundle: ModelBundle, redis_url: str, orders: Sequence[Mapping[str, Any]]
) -> list[tuple[float, float]]:
    """``(p50_s, p90_s)`` of ``orders`` from their stored features alone, offline: the rows
    read through :class:`~arrive.store.redis.RedisStore`, a Polars frame of the model's
    features (the others unknown), and the model's own ``predict`` (LightGBM)."""
    model = bundle.model
    day = datetime.now(zone(bundle)).date().isoformat()
    keys = [entity for order in orders for entity in order_keys(order, day)]
    store = RedisStore(RedisStoreConfig(url=redis_url))
    try:
        rows = [row or {} for row in store.get_many(keys)]
    finally:
        store.close()
    columns: dict[str, list[Any]] = {name: [] for name in model.features_}
    for i in range(len(orders)):
        values: dict[str, Any] = {}
        for row in rows[ENTITIES * i : ENTITIES * (i + 1)]:
            values.update((name, fv.value) for name, fv in row.items())
        for name, column in columns.items():
            value = values.get(name)
            column.append(value if isinstance(value, float) else None)
    frame = pl.DataFrame(columns, schema=dict.fromkeys(model.features_, pl.Float64))
    for name in model.vocabulary_:  # categoricals: none is stored, all unknown
        frame = frame.with_columns(pl.lit(None, pl.String).alias(name))
    out = model.predict(frame)
    p50 = quantile_index(model.quantiles_, P50, "offline")
    p90 = quantile_index(model.quantiles_, P90, "offline")
    return [(float(q[p50]), float(q[p90])) for q in out]


def check(
    url: str, bundle: ModelBundle, redis_url: str, orders: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Ask the app at ``url`` for ``orders`` one by one and as one batch, and compare each
    answer with :func:`offline` (relative 1e-6: compiled trees against LightGBM).

    Returns:
        ``{"orders": n, "mismatches": m}`` (both ways of asking counted).
    """
    expected = offline(bundle, redis_url, orders)
    single = [_post(url + "/v1/eta", dict(order)) for order in orders]
    batch = _post(url + "/v1/eta/batch", {"orders": [dict(order) for order in orders]})
    answers = [*single, *(batch["answers"] if isinstance(batch, dict) else batch)]
    mismatches = sum(
        not (_close(a["p50_s"], p50) and _close(a["p90_s"], p90))
        for a, (p50, p90) in zip(answers, [*expected, *expected], strict=True)
    )
    return {"orders": len(orders), "mismatches": mismatches}


def _close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6)


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())
