"""The online store on a Redis Cluster: the keys, packing and merge of
:mod:`arrive.store.redis`, routed by hash slot with redis-py's cluster clients.

Keys and slots: the key layout is unchanged (:mod:`arrive.store.keys`, no hash tag),
so each entity's key hashes on its own and the entities spread evenly over the
nodes. One request's reads (its store, courier, market, day, cells and the engine's
watermark, ~6-15 keys) are one ``GET`` per key, pipelined per node, the nodes in
parallel: one round trip in time, with as many socket writes as nodes touched (at
most the number of primaries). The service's reads go through one pipelined
connection per primary (:class:`_ClusterReads`, routed by a ``CLUSTER SLOTS``
table), as the single-node store's go through one connection; the blocking store
and every write use redis-py's cluster clients. Why not one tag for a request's keys: the store API
keys entities by ``(kind, id)`` alone, and a store, a courier or a cell is read by
requests of many orders, so no tag puts every key of every request in one slot;
tagging by kind would put all stores (or all couriers) on one node, the hot spot a
cluster exists to avoid. A small deployment that prefers one node per request can
put a hash tag in the prefix (``?prefix={arrive}``): every key then lands in one
slot, one node, one round trip, at the price of no spreading at all.

``GET`` per key rather than ``MGET`` per slot: with keys spread by entity nearly
every key has a slot of its own, so it is the same number of commands; and a
single-key read is never refused with ``TRYAGAIN`` while its slot migrates (an
``MGET`` of keys split between the two nodes is), so a resharding costs redirects,
never an error. MOVED and ASK are followed (``ASKING`` on the target, the slot
map patched on MOVED), by :class:`_ClusterReads` for the service's reads, by redis-py
elsewhere.

Writes run :data:`~arrive.store.codec.MERGE_SCRIPT` as on one node, one key per
call (a script's keys must share a slot, and a multi-key call over a migrating slot
would be refused with ``TRYAGAIN`` as an ``MGET`` would), all calls of a
``put_many`` in one pipeline. A node down: the read fails at once with
:class:`~arrive.errors.FeatureStoreUnavailable` (``retries`` defaults to 0, as a
service with a deadline wants), and the next call finds the node when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.retry
from redis.backoff import NoBackoff
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ClusterError, RedisClusterException, ResponseError

from arrive.errors import FeatureStoreUnavailable, StoreError
from arrive.store.base import EntityKey, FeatureRow
from arrive.store.codec import MERGE_SCRIPT
from arrive.store.redis import (
    _UNAVAILABLE,
    MERGE_SHA,
    RedisStoreConfig,
    _MergeCall,
    _needs_script,
    _Plan,
    _raise_first_error,
    startup_nodes,
)
from arrive.store.redis_pipe import PipelinedRedis, Redirect

_MAX_REDIRECTS: Final = 5

_REDIRECTED: Final = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")
"""Error replies that mean "not here, not now" (left after redis-py's own retries)."""


@contextlib.contextmanager
def _translated(where: str) -> Iterator[None]:
    """redis-py's cluster and socket errors as :mod:`arrive.errors` (the only place)."""
    try:
        yield
    except (*_UNAVAILABLE, ClusterError, RedisClusterException) as exc:
        raise FeatureStoreUnavailable(f"redis cluster at {where} is unavailable: {exc}") from exc
    except ResponseError as exc:
        if str(exc).startswith(_REDIRECTED):
            raise FeatureStoreUnavailable(f"redis cluster at {where}: {exc}") from exc
        raise StoreError(f"redis cluster at {where} refused a command: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreError(f"redis cluster at {where} refused a command: {exc}") from exc


def _client_options(config: RedisStoreConfig) -> dict[str, Any]:
    parts = urlsplit(config.url)
    options: dict[str, Any] = {
        "socket_timeout": config.socket_timeout_s,
        "socket_connect_timeout": config.connect_timeout_s,
        "ssl": parts.scheme.startswith("rediss"),
    }
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    if config.max_connections is not None:
        options["max_connections"] = config.max_connections
    return options


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _one_key_each(plan: _Plan, items: list[tuple[str, bytes]]) -> list[_MergeCall]:
    """The merges of ``items``, one key each (see the module docstring)."""
    return [call for item in items for call in plan.batched([item])]


class RedisClusterStore:
    """An :class:`~arrive.store.base.OnlineStore` on a Redis Cluster, blocking.

    Thread-safe (redis-py's cluster client). ``get_many`` is one pipeline of ``GET``
    per node, sent to all nodes before any reply is read; ``put_many`` one pipeline
    of server-side merges.

    Args:
        config: a ``redis+cluster://`` URL and how to use it; no connection is
            opened until the first call.
    """

    def __init__(self, config: RedisStoreConfig) -> None:
        self.config = config
        self._plan = _Plan(config)
        self._nodes = [
            redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
            for h, p in startup_nodes(config.url)
        ]
        self._client: redis.cluster.RedisCluster | None = None
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`arrive.store.base.OnlineStore.get_many`."""
        if not keys:
            return []
        names = self._plan.read_keys(keys)
        unique = _unique(names)
        with _translated(self._plan.where):
            pipe = self._cluster().pipeline()  # type: ignore[no-untyped-call]
            for name in unique:
                pipe.get(name)
            replies = pipe.execute(raise_on_error=False)
            _raise_first_error(replies)
        found = dict(zip(unique, replies, strict=True))
        return self._plan.rows(names, [found[name] for name in names])

    def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`arrive.store.base.OnlineStore.put_many`."""
        calls = _one_key_each(self._plan, self._plan.merge_items(rows))
        if not calls:
            return
        with _translated(self._plan.where):
            results = self._merge(calls)
            if _needs_script(results):  # first use, or a node lost its scripts
                self._cluster().script_load(MERGE_SCRIPT)
                results = self._merge(calls)
            _raise_first_error(results)

    def _merge(self, calls: list[_MergeCall]) -> list[Any]:
        pipe = self._cluster().pipeline()  # type: ignore[no-untyped-call]
        for n_keys, keys_and_args in calls:
            pipe.execute_command("EVALSHA", MERGE_SHA, n_keys, *keys_and_args)
        results: list[Any] = pipe.execute(raise_on_error=False)
        return results

    def ping(self) -> None:
        """Every primary answers PING (see :meth:`arrive.store.base.OnlineStore.ping`)."""
        with _translated(self._plan.where):
            client = self._cluster()
            client.ping(target_nodes=redis.cluster.RedisCluster.PRIMARIES)

    def close(self) -> None:
        """Closes every pooled connection."""
        if self._client is not None:
            self._client.close()

    def _cluster(self) -> redis.cluster.RedisCluster:
        """The client, created on first use (redis-py's sync client connects at once)."""
        with self._lock:
            if self._client is None:
                retry = redis.retry.Retry(NoBackoff(), self.config.retries)
                self._client = redis.cluster.RedisCluster(
                    startup_nodes=self._nodes, retry=retry, **_client_options(self.config)
                )
            return self._client


def _retrieve(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Mark the outcome of ``futures`` retrieved (now or when done): a read that failed
    early leaves the others' replies unread, and asyncio would log each one's error."""
    for future in futures:
        if future.done():
            _ = future.cancelled() or future.exception()
        else:
            future.add_done_callback(_retrieved)


def _retrieved(future: asyncio.Future[Any]) -> None:
    _ = future.cancelled() or future.exception()


class _ClusterReads:
    """Reads over one :class:`~arrive.store.redis_pipe.PipelinedRedis` per primary, routed
    by a slot table (``CLUSTER SLOTS``): the service's read path.

    A read sends one ``GET`` per key, each key's on its node's connection, the nodes
    together; the reads of concurrent requests share each connection's writes, as on
    one node. ``MOVED`` patches the table and asks the new owner; ``ASK`` asks the
    target once, ``ASKING`` first. A node that cannot be reached fails the read with
    :class:`~arrive.errors.FeatureStoreUnavailable` and drops the table, so the next
    read (or ping) loads it again from any node that answers.
    """

    def __init__(self, config: RedisStoreConfig, where: str) -> None:
        parts = urlsplit(config.url)
        self._scheme = "rediss" if parts.scheme.startswith("rediss") else "redis"
        auth = parts.netloc.rpartition("@")[0]
        self._auth = f"{auth}@" if auth else ""
        self._seeds = [f"{host}:{port}" for host, port in startup_nodes(config.url)]
        self._timeouts = (config.socket_timeout_s, config.connect_timeout_s)
        self.where = where
        self._nodes: dict[str, PipelinedRedis] = {}
        self._table: list[str] = []  # slot -> "host:port" of its primary; empty: not loaded
        self._loading: asyncio.Future[list[str]] | None = None

    async def get(self, names: list[str]) -> list[Any]:
        """The value of each key of ``names`` (None when absent)."""
        table = self._table or await self._load()
        by_node: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            by_node.setdefault(table[key_slot(name.encode())], []).append(i)
        sent: list[tuple[int, asyncio.Future[Any]]] = []
        out: list[Any] = [None] * len(names)
        try:
            for node, at in by_node.items():  # every node's GETs out before any reply is awaited
                futures = await self._node(node).send_many([("GET", names[i]) for i in at])
                sent.extend(zip(at, futures, strict=True))
            for i, future in sent:
                try:
                    out[i] = await future
                except Redirect as redirect:
                    out[i] = await self._redirected(names[i], redirect)
        except FeatureStoreUnavailable:
            self._table = []  # the topology may have changed: load it again next time
            raise
        finally:
            _retrieve(future for _, future in sent)
        return out

    async def ping(self) -> None:
        """Every primary answers PING."""
        try:
            table = self._table or await self._load()
            await asyncio.gather(*(self._node(node).execute("PING") for node in set(table)))
        except FeatureStoreUnavailable:
            self._table = []
            raise

    async def aclose(self) -> None:
        """Closes every node's connection."""
        if self._loading is not None:
            self._loading.cancel()
        nodes, self._nodes = list(self._nodes.values()), {}
        for node in nodes:
            await node.aclose()

    async def _redirected(self, name: str, redirect: Redirect) -> Any:
        for _ in range(_MAX_REDIRECTS):
            node = self._node(redirect.node)
            if redirect.ask:
                asking, get = await node.send_many([("ASKING",), ("GET", name)])
                _retrieve([asking])
            else:
                if self._table:
                    self._table[redirect.slot] = redirect.node
                (get,) = await node.send_many([("GET", name)])
            try:
                return await get
            except Redirect as again:
                redirect = again
        raise FeatureStoreUnavailable(
            f"redis cluster at {self.where}: more than {_MAX_REDIRECTS} redirects for one key"
        )

    def _node(self, node: str) -> PipelinedRedis:
        found = self._nodes.get(node)
        if found is None:
            read_s, connect_s = self._timeouts
            found = self._nodes[node] = PipelinedRedis(
                f"{self._scheme}://{self._auth}{node}/0",
                where=f"{self.where} (node {node})",
                socket_timeout_s=read_s,
                connect_timeout_s=connect_s,
            )
        return found

    async def _load(self) -> list[str]:
        """The slot table, loaded once for the callers that ask meanwhile."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._slots())
            self._loading.add_done_callback(self._loaded)
        return await asyncio.shield(self._loading)

    def _loaded(self, loading: asyncio.Future[list[str]]) -> None:
        self._loading = None
        if not loading.cancelled() and loading.exception() is None:
            self._table = loading.result()

    async def _slots(self) -> list[str]:
        why = "no node to ask"
        for seed in dict.fromkeys([*self._nodes, *self._seeds]):
            try:
                ranges = await self._node(seed).execute("CLUSTER", "SLOTS")
            except StoreError as exc:  # FeatureStoreUnavailable included
                why = str(exc)
                continue
            table = [""] * REDIS_CLUSTER_HASH_SLOTS
            for start, end, primary, *_ in ranges:
                host = primary[0].decode() or seed.rpartition(":")[0]
                table[start : end + 1] = [f"{host}:{primary[1]}"] * (end + 1 - start)
            if "" not in table:
                return table
            why = f"node {seed} has slots no node serves"
        raise FeatureStoreUnavailable(f"redis cluster at {self.where} is unavailable: {why}")


class AsyncRedisClusterStore:
    """An :class:`~arrive.store.base.AsyncOnlineStore` on a Redis Cluster, for the service.

    The same keys, packing and merge as :class:`RedisClusterStore`. Reads and pings go
    through one pipelined connection per primary (:class:`_ClusterReads`: the reads of
    concurrent requests share each node's writes, the nodes asked together); writes use
    ``redis.asyncio``'s cluster client. Use it from one event loop.

    Args:
        config: a ``redis+cluster://`` URL and how to use it; no connection is
            opened until the first call.
    """

    def __init__(self, config: RedisStoreConfig) -> None:
        self.config = config
        self._plan = _Plan(config)
        nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in startup_nodes(config.url)]
        retry = redis.asyncio.retry.Retry(NoBackoff(), config.retries)
        self._client = redis.asyncio.cluster.RedisCluster(
            startup_nodes=nodes, retry=retry, **_client_options(config)
        )
        self._reads = _ClusterReads(config, self._plan.where)

    async def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`arrive.store.base.OnlineStore.get_many`."""
        if not keys:
            return []
        names = self._plan.read_keys(keys)
        unique = _unique(names)
        replies = await self._reads.get(unique)
        if len(unique) == len(names):
            return self._plan.rows(names, replies)
        found = dict(zip(unique, replies, strict=True))
        return self._plan.rows(names, [found[name] for name in names])

    async def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`arrive.store.base.OnlineStore.put_many`."""
        calls = _one_key_each(self._plan, self._plan.merge_items(rows))
        if not calls:
            return
        with _translated(self._plan.where):
            results = await self._merge(calls)
            if _needs_script(results):  # first use, or a node lost its scripts
                await self._client.script_load(MERGE_SCRIPT)
                results = await self._merge(calls)
            _raise_first_error(results)

    async def _merge(self, calls: list[_MergeCall]) -> list[Any]:
        pipe = self._client.pipeline()
        for n_keys, keys_and_args in calls:
            pipe.execute_command("EVALSHA", MERGE_SHA, n_keys, *keys_and_args)
        return await pipe.execute(raise_on_error=False)

    async def ping(self) -> None:
        """Every primary answers PING (see :meth:`arrive.store.base.OnlineStore.ping`)."""
        await self._reads.ping()

    async def close(self) -> None:
        """Closes every connection."""
        await self._reads.aclose()
        await self._client.aclose()
