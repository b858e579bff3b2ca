"""Store fixtures: the backend every contract test runs against."""

from __future__ import annotations

import pytest

from arrive.testing.store_contract import (
    AsyncInMemoryBackend,
    AsyncRedisBackend,
    AsyncRedisClusterBackend,
    InMemoryBackend,
    RedisBackend,
    RedisClusterBackend,
    StoreBackend,
)


@pytest.fixture(
    params=[
        "memory",
        "async-memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("async-redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis),
        pytest.param("async-redis-cluster", marks=pytest.mark.redis),
    ]
)
def store_backend(request: pytest.FixtureRequest) -> StoreBackend:
    if request.param == "memory":
        return InMemoryBackend()
    if request.param == "async-memory":
        return AsyncInMemoryBackend()
    if request.param.endswith("cluster"):
        cluster: str = request.getfixturevalue("redis_cluster_url")
        if request.param == "redis-cluster":
            return RedisClusterBackend(cluster)
        return AsyncRedisClusterBackend(cluster)
    url: str = request.getfixturevalue("redis_url")
    return RedisBackend(url) if request.param == "redis" else AsyncRedisBackend(url)
