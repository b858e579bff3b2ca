"""Stores named by a URL: the one table every command (ingest, serve, parity, demo,
bench) reads its store setting through.

* ``memory``: an :class:`~arrive.store.memory.InMemoryStore` in the process.
* ``redis://[user:password@]host:port/db[?prefix=P]`` (or ``rediss://``, ``unix://``):
  Redis, this deployment's keys under ``P`` (default ``arrive``,
  :mod:`arrive.store.keys`). Writers and readers of one deployment give the same URL.
* ``redis+cluster://[user:password@]host:port[,host:port…][?prefix=P]`` (or
  ``rediss+cluster://``): a Redis Cluster reached through these startup nodes
  (:mod:`arrive.store.redis_cluster`).

:func:`store_config` parses (no IO); :func:`open_store` and :func:`open_async_store`
open the blocking or async backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs, urlsplit

from arrive.errors import ConfigError
from arrive.store.base import AsyncOnlineStore, OnlineStore
from arrive.store.keys import DEFAULT_PREFIX
from arrive.store.memory import AsyncInMemoryStore, InMemoryStore

if TYPE_CHECKING:
    from arrive.store.redis import RedisStoreConfig

MEMORY: Final = "memory"
_REDIS_SCHEMES: Final = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
_PARAMETERS: Final = ("prefix",)


@dataclass(frozen=True)
class StoreOptions:
    """How a command reaches a Redis store (unused by ``memory``).

    Attributes:
        timeout_s: socket connect and read limit.
        retries: immediate retries of a command after a connection error.
        max_connections: connection pool size; None for redis-py's default.
    """

    timeout_s: float = 5.0
    retries: int = 0
    max_connections: int | None = None


def store_config(
    url: str, setting: str, options: StoreOptions | None = None
) -> RedisStoreConfig | None:
    """The Redis config ``url`` names, or None for ``memory`` (no IO).

    Args:
        url: the store URL.
        setting: how the user gave it (``--store``, ``setting store_url``), named in errors.
        options: timeouts and pool; default :class:`StoreOptions`.

    Raises:
        ConfigError: ``{setting}: ...``, for an unknown scheme or parameter, or an
            empty prefix (the URL itself is not echoed: it may hold a password).
    """
    if url == MEMORY:
        return None
    parts = urlsplit(url)
    if parts.scheme not in _REDIS_SCHEMES:
        raise ConfigError(
            f"{setting}: unknown store {parts.scheme or url!r} (expected 'memory' or a "
            "redis://, rediss://, unix:// or redis+cluster:// URL)"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(_PARAMETERS))
    if unknown:
        raise ConfigError(
            f"{setting}: unknown parameter {unknown[0]!r} (a store URL takes ?prefix=)"
        )
    prefix = query.get("prefix", [DEFAULT_PREFIX])[-1]
    if not prefix:
        raise ConfigError(f"{setting}: ?prefix= must not be empty")
    from arrive.store.redis import RedisStoreConfig

    options = options or StoreOptions()
    try:
        return RedisStoreConfig(
            url=url.split("?", 1)[0],
            key_prefix=prefix,
            socket_timeout_s=options.timeout_s,
            connect_timeout_s=options.timeout_s,
            retries=options.retries,
            max_connections=options.max_connections,
        )
    except ConfigError as exc:
        raise ConfigError(f"{setting}: {exc}") from None


def open_store(url: str, setting: str, options: StoreOptions | None = None) -> OnlineStore:
    """The blocking store ``url`` names (for ingest loops and tools).

    Raises:
        ConfigError: as :func:`store_config`.
    """
    config = store_config(url, setting, options)
    if config is None:
        return InMemoryStore()
    if config.cluster:
        from arrive.store.redis_cluster import RedisClusterStore

        return RedisClusterStore(config)
    from arrive.store.redis import RedisStore

    return RedisStore(config)


def open_async_store(
    url: str, setting: str, options: StoreOptions | None = None
) -> AsyncOnlineStore:
    """The async store ``url`` names (for the service).

    Raises:
        ConfigError: as :func:`store_config`.
    """
    config = store_config(url, setting, options)
    if config is None:
        return AsyncInMemoryStore(InMemoryStore())
    if config.cluster:
        from arrive.store.redis_cluster import AsyncRedisClusterStore

        return AsyncRedisClusterStore(config)
    from arrive.store.redis import AsyncRedisStore

    return AsyncRedisStore(config)
