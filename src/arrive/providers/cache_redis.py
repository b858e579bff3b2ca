"""The provider cache in Redis, shared by every worker and replica.

One key per cache key (``{prefix}{key}``), the answer packed with msgspec, expiring with
``PX keep_s`` (Redis forgets it; size is bounded by the server's ``maxmemory`` with an
``allkeys-lru`` or ``volatile-lru`` policy). Single-flight stays per process: two workers
missing the same key at once may each call the vendor once (at most one call per key per
worker per TTL), the trade taken for no lock round trip on the hot path.
"""

from __future__ import annotations

import redis
import redis.asyncio
from msgspec import DecodeError, msgpack

from arrive.errors import ConfigError
from arrive.providers.base import ProviderError
from arrive.providers.cache_store import CachedAnswer

_DECODER = msgpack.Decoder(CachedAnswer)


class RedisCacheStore:
    """Answers in Redis at ``url`` under ``key_prefix``; each command within ``timeout_s``.

    Raises:
        ProviderError: (``name`` ``"cache"``, reason ``connection`` or ``timeout``) when
            Redis cannot be reached or is slow: the cache treats it as a miss.
    """

    def __init__(
        self, url: str, *, key_prefix: str = "arrive:tt:", timeout_s: float = 0.05
    ) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("cache.url: must start with redis://, rediss:// or unix://")
        if not key_prefix:
            raise ConfigError("cache.key_prefix: must not be empty")
        self.prefix = key_prefix
        self._client = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    async def get(self, key: str) -> CachedAnswer | None:
        try:
            raw = await self._client.get(self.prefix + key)
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc
        if raw is None:
            return None
        try:
            return _DECODER.decode(raw.encode() if isinstance(raw, str) else raw)
        except DecodeError:
            return None  # written by another version: a miss, overwritten by the next put

    async def put(self, key: str, answer: CachedAnswer, keep_s: float) -> None:
        try:
            await self._client.set(
                self.prefix + key, msgpack.encode(answer), px=max(1, round(keep_s * 1000))
            )
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()


def _unavailable(exc: redis.RedisError) -> ProviderError:
    reason = "timeout" if isinstance(exc, redis.TimeoutError) else "connection"
    return ProviderError("cache", reason, str(exc))
