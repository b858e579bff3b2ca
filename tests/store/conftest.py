"""Store fixtures: the backend every contract test runs against."""

from __future__ import annotations

import pytest

from arrive.testing.store_contract import (
    AsyncInMemoryBackend,
    AsyncRedisBackend,
    InMemoryBackend,
    RedisBackend,
    StoreBackend,
)


@pytest.fixture(
    params=[
        "memory",
        "async-memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("async-redis", marks=pytest.mark.redis),
    ]
)
def store_backend(request: pytest.FixtureRequest) -> StoreBackend:
    if request.param == "memory":
        return InMemoryBackend()
    if request.param == "async-memory":
        return AsyncInMemoryBackend()
    url: str = request.getfixturevalue("redis_url")
    return RedisBackend(url) if request.param == "redis" else AsyncRedisBackend(url)
