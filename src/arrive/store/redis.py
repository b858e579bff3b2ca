"""The online store in Redis: one packed vector per entity, read with one MGET.

:class:`RedisStore` (blocking, for ingest loops and tools) and
:class:`AsyncRedisStore` (``redis.asyncio``, for the service) share the IO-free
:class:`_Plan` (keys, packing, coalescing) and the error translation, so each is
a few lines of IO. Writes run :data:`~arrive.store.codec.MERGE_SCRIPT` in Redis,
``merge_batch`` entities per call, all calls of a ``put_many`` in one pipeline
(``transaction=False``): correct with any number of concurrent writers, no WATCH.

Single-node Redis (or a proxy that forwards multi-key commands); a Redis Cluster
is :mod:`arrive.store.redis_cluster` (same keys, plan and merge, routed by slot).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import msgspec
import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, OutOfMemoryError, ReadOnlyError

from arrive.errors import ConfigError, FeatureStoreUnavailable, StoreError
from arrive.store.base import (
    EntityKey,
    FeatureRow,
    FeatureValue,
    checked_key,
    checked_row,
    merge_row,
)
from arrive.store.codec import MERGE_SCRIPT, pack_row, unpack_row, unpack_rows
from arrive.store.keys import DEFAULT_PREFIX, KeyLayout
from arrive.store.redis_pipe import PipelinedRedis

MERGE_SHA: Final = hashlib.sha1(MERGE_SCRIPT.encode()).hexdigest()
_MergeCall = tuple[int, list[str | bytes | int]]
"""EVALSHA's ``numkeys`` and ``keys_and_args`` for one server-side merge."""
_SCHEMES: Final = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
_UNAVAILABLE: Final = (
    redis.ConnectionError,  # also refused, reset, auth failed, BusyLoadingError
    redis.TimeoutError,
    ReadOnlyError,  # a replica after fail-over
    OutOfMemoryError,
    OSError,
)


class RedisStoreConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where and how to reach Redis.

    Attributes:
        type: the backend discriminator (always ``"redis"``).
        url: ``redis://[user:password@]host:port/db``, ``rediss://…`` or ``unix://…``;
            a Redis Cluster as ``redis+cluster://[user:password@]host:port[,host:port…]``
            (or ``rediss+cluster://``): its startup nodes (:mod:`arrive.store.redis_cluster`).
        key_prefix: namespace of this deployment's keys (:mod:`arrive.store.keys`).
        key_ttl_s: expiry of an entity's key after its last write, a memory bound:
            set it to the longest feature TTL (stale values are never served
            anyway). ``None`` keeps keys forever.
        socket_timeout_s: limit on each read or write on the socket.
        connect_timeout_s: limit on opening a connection.
        retries: immediate retries of a command after a connection error or
            timeout (safe: reads and merges are idempotent). 0 suits a service
            that falls back within its deadline.
        max_connections: connection pool size; ``None`` for redis-py's default.
        merge_batch: entities per server-side merge call; bounds how long one
            script blocks the server.
    """

    type: Literal["redis"] = "redis"
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = DEFAULT_PREFIX
    key_ttl_s: float | None = None
    socket_timeout_s: float = 0.5
    connect_timeout_s: float = 0.5
    retries: int = 0
    max_connections: int | None = None
    merge_batch: int = 128

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in _SCHEMES:
            raise ConfigError(f"store.url: scheme must be one of {', '.join(_SCHEMES)}")
        if self.cluster:
            startup_nodes(self.url)  # refuses a malformed node list
        if not self.key_prefix:
            raise ConfigError("store.key_prefix: must not be empty")
        _check_positive("key_ttl_s", self.key_ttl_s)
        _check_positive("socket_timeout_s", self.socket_timeout_s)
        _check_positive("connect_timeout_s", self.connect_timeout_s)
        _check_positive("max_connections", self.max_connections)
        _check_positive("merge_batch", self.merge_batch)
        if self.retries < 0:
            raise ConfigError(f"store.retries: {self.retries} must be 0 or more")

    @property
    def cluster(self) -> bool:
        """True when ``url`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
        return urlsplit(self.url).scheme.endswith("+cluster")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RedisStoreConfig:
        """Validated config from settings; raises ConfigError naming the field."""
        try:
            return msgspec.convert(data, cls, str_keys=True)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"store: {exc}") from exc


def startup_nodes(url: str) -> list[tuple[str, int]]:
    """``(host, port)`` of each node a ``redis+cluster://`` URL names (no IO).

    Raises:
        ConfigError: a node lacks a host or a valid port, or the URL selects a
            database other than 0 (a cluster has only db 0).
    """
    parts = urlsplit(url)
    nodes = []
    for node in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = node.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"store.url: cluster node {node!r} must be host:port")
        nodes.append((host.strip("[]"), int(port)))
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigError("store.url: a Redis Cluster has only database 0")
    return nodes


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"store.{name}: {value} must be a positive number")


@contextlib.contextmanager
def _translated(where: str) -> Iterator[None]:
    """Turns redis-py and socket errors into :mod:`arrive.errors` (the only place)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise FeatureStoreUnavailable(f"redis at {where} is unavailable: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreError(f"redis at {where} refused a command: {exc}") from exc


def _redacted(url: str) -> str:
    """``url`` without credentials or query, for messages and logs."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    if parts.scheme.endswith("+cluster"):  # several host:port, no .port
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


class _Plan:
    """The IO-free half of both Redis stores: keys, packing, commands, decoding."""

    def __init__(self, config: RedisStoreConfig) -> None:
        self.where = _redacted(config.url)
        self._keys = KeyLayout(config.key_prefix)
        ttl_s = config.key_ttl_s
        self._expiry_ms = 0 if ttl_s is None else max(1, math.ceil(ttl_s * 1000))
        self._batch = config.merge_batch

    def read_keys(self, entities: Sequence[EntityKey]) -> list[str]:
        return self._keys.feature_keys(entities)

    def rows(self, keys: list[str], packed: Sequence[object]) -> list[FeatureRow | None]:
        if len(keys) != len(packed):
            raise ValueError(f"{len(keys)} keys read but {len(packed)} values came back")
        try:
            return unpack_rows(packed)
        except (msgspec.DecodeError, TypeError):  # one by one, to name the key
            return [
                None if data is None else self._unpack(key, data)
                for key, data in zip(keys, packed, strict=True)
            ]

    def merge_calls(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> list[_MergeCall]:
        """The server-side merges of ``rows``; validates all first."""
        return self.batched(self.merge_items(rows))

    def merge_items(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> list[tuple[str, bytes]]:
        """``(key, packed update)`` of each entity of ``rows`` (coalesced, validated)."""
        return [
            (self._keys.feature_key(key), pack_row(row))
            for key, row in _coalesced(rows).items()
            if row
        ]

    def batched(self, items: list[tuple[str, bytes]]) -> list[_MergeCall]:
        """``items`` in server-side merges of ``merge_batch`` keys each."""
        return [
            self._merge_call(items[i : i + self._batch]) for i in range(0, len(items), self._batch)
        ]

    def _merge_call(self, chunk: list[tuple[str, bytes]]) -> _MergeCall:
        return len(chunk), [*(key for key, _ in chunk), self._expiry_ms, *(v for _, v in chunk)]

    def _unpack(self, key: str, data: object) -> dict[str, FeatureValue]:
        try:
            if not isinstance(data, bytes):
                raise msgspec.DecodeError(f"got {type(data).__name__}, not bytes")
            return unpack_row(data)
        except msgspec.DecodeError as exc:
            raise StoreError(
                f"redis at {self.where}: key {key!r} does not hold a packed feature vector ({exc})"
            ) from exc


def _coalesced(
    rows: Sequence[tuple[EntityKey, FeatureRow]],
) -> dict[EntityKey, dict[str, FeatureValue]]:
    """One validated row per entity: rows of the same entity merged in the client."""
    merged: dict[EntityKey, dict[str, FeatureValue]] = {}
    for key, row in rows:
        update = checked_row(checked_key(key), row)
        if key in merged:
            merge_row(merged[key], update)
        else:
            merged[key] = update
    return merged


def _needs_script(results: list[Any]) -> bool:
    return any(isinstance(result, NoScriptError) for result in results)


def _raise_first_error(results: list[Any]) -> None:
    for result in results:
        if isinstance(result, Exception):
            raise result


def _single_node(config: RedisStoreConfig) -> None:
    if config.cluster:
        raise ConfigError(
            "store.url: a redis+cluster:// URL is a Redis Cluster: open it with "
            "arrive.store.urls.open_store (RedisClusterStore)"
        )


def _options(config: RedisStoreConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": config.socket_timeout_s,
        "socket_connect_timeout": config.connect_timeout_s,
    }
    if config.max_connections is not None:
        options["max_connections"] = config.max_connections
    return options


class RedisStore:
    """An :class:`~arrive.store.base.OnlineStore` in Redis, blocking (redis-py + hiredis).

    Thread-safe (redis-py's connection pool). ``get_many`` is one MGET; ``put_many``
    is one pipeline of server-side merges.

    Args:
        config: where Redis is and how to use it; no connection is opened until
            the first call.
    """

    def __init__(self, config: RedisStoreConfig) -> None:
        _single_node(config)
        self.config = config
        self._plan = _Plan(config)
        retry = redis.retry.Retry(NoBackoff(), config.retries)
        self._client = redis.Redis.from_url(config.url, retry=retry, **_options(config))

    def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`arrive.store.base.OnlineStore.get_many`."""
        if not keys:
            return []
        names = self._plan.read_keys(keys)
        with _translated(self._plan.where):
            packed = self._client.mget(names)
        return self._plan.rows(names, packed)

    def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`arrive.store.base.OnlineStore.put_many`."""
        calls = self._plan.merge_calls(rows)
        if not calls:
            return
        with _translated(self._plan.where):
            results = self._merge(calls)
            if _needs_script(results):  # first use, or the server lost its scripts
                self._client.script_load(MERGE_SCRIPT)
                results = self._merge(calls)
            _raise_first_error(results)

    def _merge(self, calls: list[_MergeCall]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for n_keys, keys_and_args in calls:
            pipe.evalsha(MERGE_SHA, n_keys, *keys_and_args)
        return pipe.execute(raise_on_error=False)

    def ping(self) -> None:
        """See :meth:`arrive.store.base.OnlineStore.ping`."""
        with _translated(self._plan.where):
            self._client.ping()

    def close(self) -> None:
        """Closes every pooled connection."""
        self._client.close()


class AsyncRedisStore:
    """An :class:`~arrive.store.base.AsyncOnlineStore` in Redis, for the service.

    The same keys, packing and merge as :class:`RedisStore`. Reads and pings share
    one pipelined connection (:class:`~arrive.store.redis_pipe.PipelinedRedis`: the
    reads of concurrent requests go out in one write); writes use ``redis.asyncio``.
    Use it from one event loop (the one of its first call).

    Args:
        config: where Redis is and how to use it; no connection is opened until
            the first call.
    """

    def __init__(self, config: RedisStoreConfig) -> None:
        _single_node(config)
        self.config = config
        self._plan = _Plan(config)
        retry = redis.asyncio.retry.Retry(NoBackoff(), config.retries)
        self._client = redis.asyncio.Redis.from_url(config.url, retry=retry, **_options(config))
        self._reads = PipelinedRedis(
            config.url,
            where=self._plan.where,
            socket_timeout_s=config.socket_timeout_s,
            connect_timeout_s=config.connect_timeout_s,
        )

    async def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`arrive.store.base.OnlineStore.get_many`."""
        if not keys:
            return []
        names = self._plan.read_keys(keys)
        packed = await self._reads.execute("MGET", *names)
        return self._plan.rows(names, packed)

    async def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`arrive.store.base.OnlineStore.put_many`."""
        calls = self._plan.merge_calls(rows)
        if not calls:
            return
        with _translated(self._plan.where):
            results = await self._merge(calls)
            if _needs_script(results):  # first use, or the server lost its scripts
                await self._client.script_load(MERGE_SCRIPT)
                results = await self._merge(calls)
            _raise_first_error(results)

    async def _merge(self, calls: list[_MergeCall]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for n_keys, keys_and_args in calls:
            pipe.evalsha(MERGE_SHA, n_keys, *keys_and_args)
        return await pipe.execute(raise_on_error=False)

    async def ping(self) -> None:
        """See :meth:`arrive.store.base.OnlineStore.ping`."""
        await self._reads.execute("PING")

    async def close(self) -> None:
        """Closes every connection."""
        await self._reads.aclose()
        await self._client.aclose()
