"""One table from a store URL to its backend: what each URL opens, and the one-line
refusals naming the setting the URL came from."""

from __future__ import annotations

import pytest

from arrive.errors import ConfigError
from arrive.store.keys import DEFAULT_PREFIX
from arrive.store.memory import AsyncInMemoryStore, InMemoryStore
from arrive.store.redis import AsyncRedisStore, RedisStore, startup_nodes
from arrive.store.redis_cluster import AsyncRedisClusterStore, RedisClusterStore
from arrive.store.urls import StoreOptions, open_async_store, open_store, store_config


def test_memory_opens_the_in_process_store() -> None:
    assert store_config("memory", "--store") is None
    assert isinstance(open_store("memory", "--store"), InMemoryStore)
    assert isinstance(open_async_store("memory", "--store"), AsyncInMemoryStore)


def test_a_prefix_names_the_key_namespace_and_leaves_the_url() -> None:
    config = store_config("redis://127.0.0.1:6390/2?prefix=east", "--store")
    assert config is not None
    assert config.url == "redis://127.0.0.1:6390/2"
    assert config.key_prefix == "east"


def test_without_a_prefix_the_keys_are_in_the_default_namespace() -> None:
    config = store_config("unix:///run/redis.sock", "--store")
    assert config is not None
    assert (config.url, config.key_prefix) == ("unix:///run/redis.sock", DEFAULT_PREFIX)


def test_options_set_the_timeouts_retries_and_pool() -> None:
    options = StoreOptions(timeout_s=0.25, retries=2, max_connections=56)
    config = store_config("rediss://cache:6380/0", "setting store_url", options)
    assert config is not None
    assert (config.socket_timeout_s, config.connect_timeout_s) == (0.25, 0.25)
    assert (config.retries, config.max_connections) == (2, 56)


def test_redis_urls_open_the_blocking_or_async_backend() -> None:
    url = "redis://127.0.0.1:6390/0?prefix=x"  # opening does not connect
    store, async_store = open_store(url, "--store"), open_async_store(url, "--store")
    assert isinstance(store, RedisStore)
    assert isinstance(async_store, AsyncRedisStore)


def test_a_cluster_url_opens_the_cluster_backends_with_its_startup_nodes() -> None:
    url = "redis+cluster://u:pw@10.0.0.1:7000,10.0.0.2:7001?prefix=east"  # does not connect
    config = store_config(url, "--store")
    assert config is not None
    assert config.cluster
    assert config.key_prefix == "east"
    assert startup_nodes(config.url) == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert isinstance(open_store(url, "--store"), RedisClusterStore)
    assert isinstance(open_async_store(url, "--store"), AsyncRedisClusterStore)
    single = store_config("redis://10.0.0.1:7000/0", "--store")
    assert single is not None
    assert not single.cluster
    with pytest.raises(ConfigError, match="is a Redis Cluster"):
        RedisStore(config)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://:secret@h:7000,h2/0", "cluster node 'h2' must be host:port"),
        ("redis+cluster://:secret@h:7000/3", "only database 0"),
        ("postgres://db/0", "unknown store 'postgres'"),
        ("bogus", "unknown store 'bogus'"),
        ("redis://:secret@h:6379/0?prefx=a", "unknown parameter 'prefx'"),
        ("redis://:secret@h:6379/0?prefix=", "?prefix= must not be empty"),
    ],
)
def test_a_bad_url_is_refused_naming_the_setting_not_the_password(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        store_config(url, "setting store_url")
    message = str(refused.value)
    assert message.startswith("setting store_url: ")
    assert says in message
    assert "secret" not in message
