"""The online feature store: the latest value of each feature per entity, with its event time.

Backends (pick one explicitly; :class:`InMemoryStore` is the default):

* :class:`InMemoryStore` — a dict in the process (:class:`AsyncInMemoryStore` to await it).
* :class:`RedisStore` / :class:`AsyncRedisStore` — Redis, one MGET per read;
  configured by :class:`RedisStoreConfig`. Imported on first use (redis-py takes
  about 150 ms to import).
* :class:`~arrive.store.redis_cluster.RedisClusterStore` /
  :class:`~arrive.store.redis_cluster.AsyncRedisClusterStore` — a Redis Cluster
  (``redis+cluster://`` URLs), the same keys and values routed by hash slot.

Wrap any backend in :class:`FreshStore` (or :class:`AsyncFreshStore`) to serve
only values younger than their feature's TTL. Every command opens the store its URL
names through :mod:`arrive.store.urls` (``memory``, ``redis://…[?prefix=P]``,
``redis+cluster://…``);
:func:`arrive.store.threaded.as_async` awaits a blocking store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from arrive.store.base import (
    AsyncOnlineStore,
    EntityKey,
    FeatureRow,
    FeatureScalar,
    FeatureValue,
    OnlineStore,
    from_epoch_us,
    supersedes,
    to_epoch_us,
)
from arrive.store.freshness import AsyncFreshStore, FreshnessGate, FreshStore
from arrive.store.keys import KeyLayout
from arrive.store.memory import AsyncInMemoryStore, InMemoryStore

if TYPE_CHECKING:
    from arrive.store.redis import AsyncRedisStore, RedisStore, RedisStoreConfig

_LAZY = {"AsyncRedisStore", "RedisStore", "RedisStoreConfig"}

__all__ = [
    "AsyncFreshStore",
    "AsyncInMemoryStore",
    "AsyncOnlineStore",
    "AsyncRedisStore",
    "EntityKey",
    "FeatureRow",
    "FeatureScalar",
    "FeatureValue",
    "FreshStore",
    "FreshnessGate",
    "InMemoryStore",
    "KeyLayout",
    "OnlineStore",
    "RedisStore",
    "RedisStoreConfig",
    "from_epoch_us",
    "supersedes",
    "to_epoch_us",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("arrive.store.redis"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
