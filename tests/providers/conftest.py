"""Provider fixtures: the cache backends the contract runs against."""

from __future__ import annotations

import pytest

from arrive.testing.cache_store_contract import (
    CacheBackend,
    MemoryCacheBackend,
    RedisCacheBackend,
)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cache_backend(request: pytest.FixtureRequest) -> CacheBackend:
    if request.param == "memory":
        return MemoryCacheBackend()
    return RedisCacheBackend(request.getfixturevalue("redis_url"))
