"""A peer to measure Arrive against: the ETA service a team would write by hand with
FastAPI, pydantic, redis.asyncio and LightGBM (``pip install -e .[peer]``).

The same model and the same Redis features as the service, and the same inputs as
the bare path (``bare_path.py``): the order's five feature rows and the engine's, read
with one MGET, their stored numbers looked up, everything else unknown; the model's
boosters called through LightGBM with ``num_threads=1`` (its default thread pool
costs a few milliseconds a call) and its calibration applied. Request bodies are
validated by pydantic (unknown fields allowed, as a client may send the whole order);
answers are pydantic models.

Started by ``peer_bench.py`` as ``uvicorn --factory peer_app:create --workers 2``
with ``PEER_REGISTRY`` (the registry whose production model serves) and
``PEER_REDIS`` (the store's URL). :func:`bare_path.check` checks its answers.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import msgspec
import numpy as np
import redis.asyncio
from bare_path import ENTITIES, order_keys, production, stored, zone
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from arrive.calibration import apply_scales
from arrive.schema.eta import P50, P90, quantile_index
from arrive.store.keys import KeyLayout

_ROW = msgspec.msgpack.Decoder(dict[str, tuple[float | str | None, int]])


class Order(BaseModel):
    """The fields of an order the peer reads (others allowed and ignored)."""

    model_config = ConfigDict(extra="allow")
    order_id: str
    store_id: str | None = None
    market_id: str | None = None
    courier_id: str | None = None


class Batch(BaseModel):
    """Several orders."""

    orders: list[Order]


class Answer(BaseModel):
    """The two quantiles in seconds."""

    p50_s: float
    p90_s: float


class Answers(BaseModel):
    """A batch's answers, in the order of its orders."""

    answers: list[Answer]


def create() -> FastAPI:
    """The FastAPI app (a uvicorn factory)."""
    bundle = production(os.environ["PEER_REGISTRY"])
    model = bundle.model
    client = redis.asyncio.from_url(os.environ["PEER_REDIS"])
    key = KeyLayout().feature_key
    where = zone(bundle)
    p50 = quantile_index(model.quantiles_, P50, "peer")
    p90 = quantile_index(model.quantiles_, P90, "peer")
    boosters = [model.boosters_[q] for q in model.quantiles_]
    app = FastAPI()

    async def answer(orders: list[Order]) -> list[Answer]:
        day = datetime.now(where).date().isoformat()
        keys = [key(("pipeline", "engine"))]
        for order in orders:
            keys += [key(entity) for entity in order_keys(order.model_dump(), day)]
        packed = await client.mget(keys)
        rows = [_ROW.decode(data) if data else {} for data in packed]
        matrix = np.array(
            [
                stored(rows[1 + ENTITIES * i : 1 + ENTITIES * (i + 1)], model.features_)
                for i in range(len(orders))
            ]
        )
        raw = np.column_stack([b.predict(matrix, num_threads=1) for b in boosters])
        if model.residual_of:
            raw = raw + model.base(matrix)[:, None]
        out = apply_scales(raw, model.quantiles_, model.scales_, model.anchor_offset_s_)
        return [Answer(p50_s=float(q[p50]), p90_s=float(q[p90])) for q in out]

    @app.get("/readyz")
    async def readyz() -> dict[str, Any]:
        return {}

    @app.post("/v1/eta")
    async def eta(order: Order) -> Answer:
        return (await answer([order]))[0]

    @app.post("/v1/eta/batch")
    async def eta_batch(batch: Batch) -> Answers:
        return Answers(answers=await answer(batch.orders))

    return app
