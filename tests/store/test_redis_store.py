"""RedisStore beyond the contract: round trips, layout, expiry, scripts, concurrency, outages."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Iterator

import pytest
import redis

from arrive.errors import ConfigError, FeatureStoreUnavailable, StoreError
from arrive.store.base import EntityKey, FeatureRow
from arrive.store.redis import AsyncRedisStore, RedisStore, RedisStoreConfig
from arrive.testing.servers.redis_server import RedisServer
from arrive.testing.store_contract import folded, fv, redis_test_config

pytestmark = pytest.mark.redis


@pytest.fixture
def config(redis_url: str) -> RedisStoreConfig:
    return redis_test_config(redis_url)  # type: ignore[no-any-return]


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def store(config: RedisStoreConfig) -> Iterator[RedisStore]:
    store = RedisStore(config)
    yield store
    store.close()


def _calls(raw: redis.Redis) -> dict[str, int]:
    stats = raw.info("commandstats")
    return {name: stat["calls"] for name, stat in stats.items() if name != "cmdstat_info"}


def _new_calls(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def _rows(n: int) -> list[tuple[EntityKey, FeatureRow]]:
    return [(("store", f"s{i}"), {"a": fv(float(i)), "b": fv("x", 1)}) for i in range(n)]


def test_a_read_is_one_mget(store: RedisStore, raw: redis.Redis) -> None:
    store.put_many(_rows(50))
    keys = [key for key, _ in _rows(50)] + [("store", "missing")]
    before = _calls(raw)
    rows = store.get_many(keys)
    assert _new_calls(before, _calls(raw)) == {"cmdstat_mget": 1}
    assert sum(row is not None for row in rows) == 50


def test_an_async_read_is_one_mget(config: RedisStoreConfig, raw: redis.Redis) -> None:
    async def scenario() -> dict[str, int]:
        store = AsyncRedisStore(config)
        await store.put_many(_rows(20))
        before = _calls(raw)
        await store.get_many([key for key, _ in _rows(20)])
        after = _calls(raw)
        await store.close()
        return _new_calls(before, after)

    assert asyncio.run(scenario()) == {"cmdstat_mget": 1}


def test_a_write_is_one_evalsha_per_merge_batch(redis_url: str, raw: redis.Redis) -> None:
    store = RedisStore(redis_test_config(redis_url, merge_batch=128))
    store.put_many(_rows(1))  # loads the script
    before = _calls(raw)
    store.put_many(_rows(300))
    assert _new_calls(before, _calls(raw)) == {
        "cmdstat_evalsha": 3,
        "cmdstat_get": 300,
        "cmdstat_set": 299,
    }
    store.close()


def test_keys_follow_the_versioned_layout_and_expire(redis_url: str, raw: redis.Redis) -> None:
    store = RedisStore(RedisStoreConfig(url=redis_url, key_prefix="layout-t", key_ttl_s=120.0))
    store.put_many([(("store", "Zürich:1"), {"x": fv(1.0)})])
    key = "layout-t:v1:f:store:Zürich:1"
    assert raw.exists(key)
    assert 0 < raw.pttl(key) <= 120_000
    store.close()


def test_keys_without_a_ttl_never_expire(store: RedisStore, raw: redis.Redis) -> None:
    store.put_many([(("store", "a"), {"x": fv(1.0)})])
    store.put_many([(("store", "a"), {"x": fv(2.0, 1)})])
    assert raw.pttl(f"{store.config.key_prefix}:v1:f:store:a") == -1


def test_scripts_lost_by_the_server_are_loaded_again(store: RedisStore, raw: redis.Redis) -> None:
    store.put_many([(("store", "a"), {"x": fv(1.0)})])
    raw.script_flush()
    store.put_many([(("store", "a"), {"y": fv(2.0)})])
    assert store.get_many([("store", "a")]) == [{"x": fv(1.0), "y": fv(2.0)}]


def test_concurrent_writers_merge_to_the_same_state(redis_url: str) -> None:
    rng = random.Random(7)
    puts: list[tuple[EntityKey, FeatureRow]] = [
        (
            ("courier", str(rng.randrange(10))),
            {f: fv(rng.random(), rng.randrange(5)) for f in rng.sample("abcd", 2)},
        )
        for _ in range(400)
    ]
    config = redis_test_config(redis_url, merge_batch=4)
    writers = [RedisStore(config) for _ in range(4)]
    orders = [rng.sample(puts, len(puts)) for _ in writers]

    def write(store: RedisStore, order: list[tuple[EntityKey, FeatureRow]]) -> None:
        for i in range(0, len(order), 25):
            store.put_many(order[i : i + 25])

    threads = [
        threading.Thread(target=write, args=pair) for pair in zip(writers, orders, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = folded(puts)
    keys = sorted(expected)
    assert writers[0].get_many(keys) == [expected[key] for key in keys]
    for store in writers:
        store.close()


def test_a_stopped_server_is_unavailable() -> None:
    with RedisServer() as server:
        store = RedisStore(RedisStoreConfig(url=server.url, key_prefix="t"))
        store.put_many([(("store", "a"), {"x": fv(1.0)})])
        store.ping()
        server.stop()
        for call in (
            lambda: store.get_many([("store", "a")]),
            lambda: store.put_many(_rows(1)),
            store.ping,
        ):
            with pytest.raises(
                FeatureStoreUnavailable, match=f"redis at {server.url} is unavailable"
            ) as info:
                call()
            assert isinstance(info.value.__cause__, redis.ConnectionError)
        store.close()


def test_a_stopped_server_is_unavailable_to_the_async_store() -> None:
    async def scenario(server: RedisServer) -> None:
        store = AsyncRedisStore(RedisStoreConfig(url=server.url, key_prefix="t"))
        await store.put_many(_rows(2))
        server.stop()
        with pytest.raises(FeatureStoreUnavailable):
            await store.get_many([("store", "s1")])
        with pytest.raises(FeatureStoreUnavailable):
            await store.put_many(_rows(2))
        with pytest.raises(FeatureStoreUnavailable):
            await store.ping()
        await store.close()

    with RedisServer() as server:
        asyncio.run(scenario(server))


def test_a_silent_server_times_out_as_unavailable() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        store = RedisStore(
            RedisStoreConfig(url=f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.05)
        )
        with pytest.raises(FeatureStoreUnavailable, match="unavailable") as info:
            store.get_many([("store", "a")])
        assert isinstance(info.value.__cause__, redis.TimeoutError)
        store.close()


def test_credentials_never_reach_the_message() -> None:
    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        store = RedisStore(
            RedisStoreConfig(url=f"redis://user:s3cret@127.0.0.1:{port}/2?password=s3cret")
        )
        with pytest.raises(FeatureStoreUnavailable) as info:
            store.ping()
        assert f"redis at redis://127.0.0.1:{port}/2 is unavailable" in str(info.value)
        assert "s3cret" not in str(info.value)
        store.close()


def test_a_foreign_value_is_a_store_error(store: RedisStore, raw: redis.Redis) -> None:
    prefix = store.config.key_prefix
    raw.set(f"{prefix}:v1:f:store:junk", b"\xc1 not msgpack")
    raw.hset(f"{prefix}:v1:f:store:hash", "x", "1")
    with pytest.raises(StoreError, match=f"key '{prefix}:v1:f:store:junk' does not hold a packed"):
        store.get_many([("store", "a"), ("store", "junk")])
    with pytest.raises(StoreError, match="WRONGTYPE") as info:
        store.put_many([(("store", "hash"), {"x": fv(1.0)})])
    assert not isinstance(info.value, FeatureStoreUnavailable)


@pytest.mark.parametrize("data", [b"", b"\xc0", b"\x81\xa1x\x92\xc0", b"\x80\x80"])
def test_a_foreign_value_among_good_ones_is_named(
    store: RedisStore, raw: redis.Redis, data: bytes
) -> None:
    store.put_many(_rows(3))
    raw.set(f"{store.config.key_prefix}:v1:f:store:junk", data)
    keys = [key for key, _ in _rows(3)]
    with pytest.raises(StoreError, match=r"key '.*:v1:f:store:junk' does not hold a packed"):
        store.get_many([keys[0], ("store", "junk"), *keys[1:]])
    assert store.get_many(keys) == [row for _, row in _rows(3)]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"url": "http://localhost"}, "store.url: scheme"),
        ({"key_prefix": ""}, "store.key_prefix"),
        ({"socket_timeout_s": 0}, "store.socket_timeout_s"),
        ({"key_ttl_s": -1.0}, "store.key_ttl_s"),
        ({"merge_batch": 0}, "store.merge_batch"),
        ({"retries": -1}, "store.retries"),
        ({"urll": "redis://x"}, "unknown field `urll`"),
        ({"type": "memory"}, "store: Invalid enum value 'memory'"),
    ],
)
def test_bad_config_is_refused(data: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RedisStoreConfig.from_mapping(data)


def test_config_from_settings() -> None:
    config = RedisStoreConfig.from_mapping({"url": "redis://h:1/3", "key_ttl_s": 900, "retries": 1})
    assert (config.url, config.key_ttl_s, config.retries, config.type) == (
        "redis://h:1/3",
        900.0,
        1,
        "redis",
    )
