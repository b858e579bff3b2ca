"""bench/bare_path.py and bench/peer_app.py answer as an offline prediction on the same
stored features, whole numbers included (Redis hands them back as integers)."""

from __future__ import annotations

import importlib.util
import sys
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

BENCH = Path(__file__).resolve().parents[2] / "bench"
T_US = 1_700_000_000_000_000

pytestmark = pytest.mark.redis


def _load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the benches import each other by name
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _fill(url: str, orders: list[dict[str, Any]], day: str, bare_path: ModuleType) -> None:
    """Stored features for ``orders``, written twice so Redis' merge packs whole numbers
    as integers."""
    store = RedisStore(RedisStoreConfig(url=url))
    try:
        for step in (0, 1):
            rows = []
            for i, order in enumerate(orders):
                store_key, _, market_day, market, courier = bare_path.order_keys(order, day)
                at = T_US + step
                rows += [
                    (
                        store_key,
                        {
                            "store_history_count": FeatureValue(float(10 * i + step), at),
                            "store_delivery_mean_1d": FeatureValue(1800.5 + 40 * i, at),
                            "store_open_orders": FeatureValue(None if i % 3 else 2.0, at),
                        },
                    ),
                    (courier, {"courier_deliveries_all": FeatureValue(float(i), at)}),
                    (market, {"market_open_orders": FeatureValue(float(i % 4), at)}),
                    (market_day, {"market_orders_today": FeatureValue(float(5 * i), at)}),
                ]
            store.put_many(rows)
    finally:
        store.close()


def test_the_bare_path_and_the_peer_answer_as_the_offline_prediction(
    local_registry: Callable[[int], LocalRegistry],
    orders: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    bare_path = _load("bare_path")
    serve_bench = _load("serve_bench")
    registry = local_registry(1)
    bundle = bare_path.production(registry.root)
    asked = orders[:12]
    with RedisServer() as server:
        day = datetime.now(bare_path.zone(bundle)).date().isoformat()
        _fill(server.url, asked, day, bare_path)
        key = KeyLayout().feature_key(bare_path.order_keys(asked[1], day)[0])
        cells = msgspec.msgpack.decode(redis.Redis.from_url(server.url).get(key))
        assert type(cells["store_history_count"][0]) is int  # what the bare path dropped
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
