"""bench/bare_path.py and bench/peer_app.py answer as an offline prediction on the same
stored features, whole numbers included (Redis hands them back as integers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
import redis

from arrive.registry import LocalRegistry
from arrive.store.base import FeatureValue
from arrive.store.keys import KeyLayout
from arrive.store.redis import RedisStore, RedisStoreConfig
from arrive.testing.servers.redis_server import RedisServer

T_US = 1_700_000_000_000_000

pytestmark = pytest.mark.redis


def _fill(
    url: str, orders: list[dict[str, Any]], day: str, bare_path: ModuleType, names: list[str]
) -> None:
    """Every stored feature of the model for ``orders`` (half of them whole numbers),
    written twice so Redis' merge packs whole numbers as integers."""
    kinds = {"store": 0, "platform": 1, "market_orders_today": 2, "market": 3, "courier": 4}
    store = RedisStore(RedisStoreConfig(url=url))
    try:
        for step in (0, 1):
            rows = []
            for i, order in enumerate(orders):
                keys = bare_path.order_keys(order, day)
                cells: list[dict[str, FeatureValue]] = [{} for _ in keys]
                for j, name in enumerate(names):
                    kind = next((k for k in kinds if name.startswith(k)), None)
                    if kind is not None:
                        value = float((7 * i + 3 * j + step) % 40) + (0.5 if j % 2 else 0.0)
                        cells[kinds[kind]][name] = FeatureValue(value, T_US + step)
                rows += [(key, row) for key, row in zip(keys, cells, strict=True) if row]
            store.put_many(rows)
    finally:
        store.close()


def test_the_bare_path_and_the_peer_answer_as_the_offline_prediction(
    local_registry: Callable[[int], LocalRegistry],
    orders: list[dict[str, Any]],
    tmp_path: Path,
    load_bench: Callable[[str], ModuleType],
) -> None:
    bare_path = load_bench("bare_path")
    serve_bench = load_bench("serve_bench")
    registry = local_registry(1)
    bundle = bare_path.production(registry.root)
    asked = orders[:12]
    with RedisServer() as server:
        day = datetime.now(bare_path.zone(bundle)).date().isoformat()
        _fill(server.url, asked, day, bare_path, list(bundle.model.features_))
        key = KeyLayout().feature_key(bare_path.order_keys(asked[1], day)[0])
        cells = msgspec.msgpack.decode(redis.Redis.from_url(server.url).get(key))
        assert any(type(v) is int for v, _ in cells.values())  # what the bare path dropped
        env = {"BARE_BACKEND": "none", "BARE_CACHE": str(tmp_path / "cache")}
        apps = {
            "bare_path": {**env, "BARE_REGISTRY": str(registry.root), "BARE_REDIS": server.url},
            "peer_app": {"PEER_REGISTRY": str(registry.root), "PEER_REDIS": server.url},
        }
        for name, app_env in apps.items():
            log = tmp_path / f"{name}.log"
            with serve_bench.uvicorn_app(f"{name}:create", app_env, log, workers=1) as app:
                app.wait_ready(timeout_s=60)
                checked = bare_path.check(app.url, bundle, server.url, asked)
            assert checked == {"orders": 12, "mismatches": 0}, name
        stored = bare_path.offline(bundle, server.url, asked)
        assert len({p50 for p50, _ in stored}) > 1  # the stored features move the answers
