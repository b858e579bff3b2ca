"""The cache stores: the contract on every backend, then what each adds."""

from __future__ import annotations

import asyncio

import pytest
import redis

from arrive.clock import ManualClock
from arrive.errors import ConfigError
from arrive.providers.base import ProviderError
from arrive.providers.cache_redis import RedisCacheStore
from arrive.providers.cache_store import CachedAnswer, MemoryCacheStore
from arrive.testing.cache_store_contract import ANSWER, CacheStoreContract
from arrive.testing.servers.ports import free_port


class TestCacheStoreContract(CacheStoreContract):
    pass


def test_the_memory_store_forgets_the_least_recently_used_beyond_its_size() -> None:
    async def scenario() -> list[bool]:
        store = MemoryCacheStore(ManualClock(), max_entries=2)
        await store.put("a", ANSWER, 60.0)
        await store.put("b", ANSWER, 60.0)
        await store.get("a")  # a is now the most recent
        await store.put("c", ANSWER, 60.0)
        return [await store.get(key) is not None for key in "abc"]

    assert asyncio.run(scenario()) == [True, False, True]


def test_the_memory_store_forgets_an_answer_after_keep_s() -> None:
    clock = ManualClock()

    async def scenario() -> list[bool]:
        store = MemoryCacheStore(clock)
        await store.put("a", ANSWER, 60.0)
        clock.advance(59.9)
        kept = await store.get("a") is not None
        clock.advance(0.1)
        return [kept, await store.get("a") is not None, len(store) == 0]

    assert asyncio.run(scenario()) == [True, False, True]


def test_a_memory_store_of_no_size_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"cache\.max_entries"):
        MemoryCacheStore(ManualClock(), max_entries=0)


@pytest.mark.redis
def test_redis_answers_are_shared_by_workers_and_expire_with_redis(redis_url: str) -> None:
    async def scenario() -> tuple[CachedAnswer | None, int]:
        worker_a = RedisCacheStore(redis_url, key_prefix="shared:")
        worker_b = RedisCacheStore(redis_url, key_prefix="shared:")
        await worker_a.put("1:2/3:4/5", ANSWER, 30.0)
        seen = await worker_b.get("1:2/3:4/5")
        await worker_a.close()
        await worker_b.close()
        return seen, redis.Redis.from_url(redis_url).pttl("shared:1:2/3:4/5")

    seen, pttl_ms = asyncio.run(scenario())
    assert seen == ANSWER
    assert 25_000 < pttl_ms <= 30_000


@pytest.mark.redis
def test_a_value_redis_cannot_decode_is_a_miss(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).set("garbled:k", b"\xff\x00not msgpack")

    async def scenario() -> CachedAnswer | None:
        store = RedisCacheStore(redis_url, key_prefix="garbled:")
        try:
            return await store.get("k")
        finally:
            await store.close()

    assert asyncio.run(scenario()) is None


def test_an_unreachable_redis_is_a_provider_error() -> None:
    async def scenario() -> None:
        store = RedisCacheStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
        try:
            await store.get("k")
        finally:
            await store.close()

    with pytest.raises(ProviderError, match="connection"):
        asyncio.run(scenario())


def test_a_bad_redis_url_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"cache\.url"):
        RedisCacheStore("http://127.0.0.1:6379")
