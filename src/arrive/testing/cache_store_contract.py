"""Conformance suite for :class:`~arrive.providers.cache_store.CacheStore` backends.

Every backend passes it unchanged. Provide a ``cache_backend`` fixture returning a
:class:`CacheBackend` (each ``make()``, called inside the test's event loop, gives an
empty store of its own) and subclass :class:`CacheStoreContract`::

    @pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
    def cache_backend(request):
        if request.param == "memory":
            return MemoryCacheBackend()
        return RedisCacheBackend(request.getfixturevalue("redis_url"))

    class TestCacheStoreContract(CacheStoreContract):
        pass
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from arrive.clock import ManualClock
from arrive.providers.cache_redis import RedisCacheStore
from arrive.providers.cache_store import CachedAnswer, CacheStore, MemoryCacheStore

ANSWER = CachedAnswer(612.25, 3.5, "osrm", 1_709_294_400.125)


class CacheBackend(Protocol):
    """One backend under test. To implement, provide ``make``: an empty store each call."""

    def make(self) -> CacheStore: ...


class MemoryCacheBackend:
    def make(self) -> CacheStore:
        return MemoryCacheStore(ManualClock())


class RedisCacheBackend:
    def __init__(self, url: str) -> None:
        self.url = url

    def make(self) -> CacheStore:
        return RedisCacheStore(self.url, key_prefix=f"test:{uuid.uuid4().hex}:", timeout_s=2.0)


def run_with(backend: CacheBackend, scenario: Callable[[CacheStore], Awaitable[object]]) -> None:
    """Run ``scenario`` on a fresh store of ``backend``, closed afterwards."""

    async def main() -> None:
        store = backend.make()
        try:
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(main())


class CacheStoreContract:
    """What every cache store does (see the module docstring)."""

    def test_a_missing_key_is_none(self, cache_backend: CacheBackend) -> None:
        async def scenario(store: CacheStore) -> None:
            assert await store.get("nowhere") is None

        run_with(cache_backend, scenario)

    def test_an_answer_comes_back_as_stored(self, cache_backend: CacheBackend) -> None:
        answers = [ANSWER, CachedAnswer(0.0, None, "vendor-é", 0.5), CachedAnswer(1e-9, 0, "b", 1)]

        async def scenario(store: CacheStore) -> None:
            for index, answer in enumerate(answers):
                await store.put(f"k{index}", answer, 60.0)
            assert [await store.get(f"k{index}") for index in range(3)] == answers

        run_with(cache_backend, scenario)

    def test_a_put_replaces_the_answer_of_its_key_only(self, cache_backend: CacheBackend) -> None:
        newer = CachedAnswer(700.0, 3.5, "osrm", ANSWER.stored_at + 150)

        async def scenario(store: CacheStore) -> None:
            await store.put("a/b/1", ANSWER, 60.0)
            await store.put("a/b/2", ANSWER, 60.0)
            await store.put("a/b/1", newer, 60.0)
            assert await store.get("a/b/1") == newer
            assert await store.get("a/b/2") == ANSWER

        run_with(cache_backend, scenario)

    def test_keys_are_taken_literally(self, cache_backend: CacheBackend) -> None:
        async def scenario(store: CacheStore) -> None:
            await store.put("12:-5/12:-4/1900", ANSWER, 60.0)
            assert await store.get("12:-5/12:-4/190") is None
            assert await store.get("12:-5/12:-4/1900 ") is None

        run_with(cache_backend, scenario)

    def test_close_twice_is_harmless(self, cache_backend: CacheBackend) -> None:
        async def scenario(store: CacheStore) -> None:
            await store.put("k", ANSWER, 60.0)
            await store.close()

        run_with(cache_backend, scenario)
