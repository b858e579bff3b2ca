"""The pipelined read connection: shared by concurrent callers, in order, and failing
cleanly (timeouts, lost connections, error replies, bad replies, authentication)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import redis

from arrive.errors import FeatureStoreUnavailable, StoreError
from arrive.store.base import EntityKey, FeatureRow
from arrive.store.redis import AsyncRedisStore, RedisStoreConfig
from arrive.store.redis_pipe import PipelinedRedis
from arrive.testing.store_contract import fv, redis_test_config

Script = Callable[[int, bytes], bytes | None]
"""A fake server's answer to the n-th connection's data (None: stay silent)."""


def _rows(n: int) -> list[tuple[EntityKey, FeatureRow]]:
    return [(("courier", f"c{i}"), {"speed": fv(float(i)), "zone": fv(f"z{i}")}) for i in range(n)]


@asynccontextmanager
async def _fake_server(script: Script) -> AsyncIterator[str]:
    """A loopback TCP server answering each read with ``script``; yields its URL."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        number = len(writers)
        while data := await reader.read(65536):
            answer = script(number, data)
            if answer is not None:
                writer.write(answer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        await server.wait_closed()


def _client(url: str, timeout_s: float = 2.0) -> PipelinedRedis:
    return PipelinedRedis(url, where="fake", socket_timeout_s=timeout_s, connect_timeout_s=2.0)


@pytest.mark.redis
def test_concurrent_reads_share_one_connection_and_each_gets_its_own_rows(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    rows = _rows(300)

    async def scenario() -> tuple[list[list[FeatureRow | None]], int]:
        store = AsyncRedisStore(redis_test_config(redis_url))
        await store.put_many(rows)
        await store.ping()  # the read connection is open
        before = raw.info("stats")["total_connections_received"]
        found = await asyncio.gather(*(store.get_many([key]) for key, _ in rows))
        opened = raw.info("stats")["total_connections_received"] - before
        await store.close()
        return found, opened

    found, opened = asyncio.run(scenario())
    raw.close()
    assert opened == 0
    assert found == [[row] for _, row in rows]


@pytest.mark.redis
def test_a_caller_that_gives_up_does_not_shift_the_replies_of_the_others(redis_url: str) -> None:
    rows = _rows(100)

    async def scenario() -> list[list[FeatureRow | None]]:
        store = AsyncRedisStore(redis_test_config(redis_url))
        await store.put_many(rows)
        tasks = [asyncio.create_task(store.get_many([key])) for key, _ in rows]
        await asyncio.sleep(0)  # every command is queued; now half the callers give up
        for task in tasks[::2]:
            task.cancel()
        kept = await asyncio.gather(*tasks[1::2])
        after = await store.get_many([rows[0][0]])
        await store.close()
        return [*kept, after]

    found = asyncio.run(scenario())
    assert found == [[row] for _, row in rows[1::2]] + [[rows[0][1]]]


@pytest.mark.redis
def test_the_url_gives_the_user_password_and_database(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    user, password = f"arrive-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    raw.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"])
    host = redis_url.removeprefix("redis://").split("/")[0]
    url = f"redis://{user}:{password}@{host}/3"

    async def scenario() -> tuple[list[FeatureRow | None], list[FeatureRow | None]]:
        store = AsyncRedisStore(RedisStoreConfig(url=url, key_prefix="pipe-auth"))
        await store.put_many(_rows(1))
        found = await store.get_many([_rows(1)[0][0]])
        await store.close()
        other_db = AsyncRedisStore(
            RedisStoreConfig(url=redis_url.replace("/0", "/4"), key_prefix="pipe-auth")
        )
        missing = await other_db.get_many([_rows(1)[0][0]])
        await other_db.close()
        return found, missing

    try:
        found, missing = asyncio.run(scenario())
        assert found == [_rows(1)[0][1]]
        assert missing == [None]
        wrong = AsyncRedisStore(RedisStoreConfig(url=url.replace(password, "nope")))
        with pytest.raises(FeatureStoreUnavailable, match="WRONGPASS"):
            asyncio.run(wrong.ping())
    finally:
        raw.acl_deluser(user)
        raw.close()


def test_a_silent_server_times_out_every_waiting_command_and_the_next_reconnects() -> None:
    def script(connection: int, data: bytes) -> bytes | None:
        return None if connection == 1 else b"+PONG\r\n" * data.count(b"PING")

    async def scenario() -> tuple[list[BaseException | None], object]:
        async with _fake_server(script) as url:
            client = _client(url, timeout_s=0.05)
            first = await asyncio.gather(
                client.execute("PING"), client.execute("PING"), return_exceptions=True
            )
            again = await client.execute("PING")
            await client.aclose()
        return first, again

    first, again = asyncio.run(scenario())
    assert all(isinstance(e, FeatureStoreUnavailable) for e in first)
    assert "no reply within 50 ms" in str(first[0])
    assert again == b"PONG"


def test_an_error_reply_fails_only_its_command() -> None:
    answers = iter([b"-ERR unknown command 'NOPE'\r\n", b"-LOADING Redis is loading\r\n"])

    def script(connection: int, data: bytes) -> bytes:  # one command per read: awaited in turn
        return next(answers, b"+PONG\r\n")

    async def scenario() -> list[object]:
        async with _fake_server(script) as url:
            client = _client(url)
            out = [
                await asyncio.gather(client.execute(c), return_exceptions=True)
                for c in ("NOPE", "PING", "PING")
            ]
            await client.aclose()
        return [o[0] for o in out]

    refused, loading, pong = asyncio.run(scenario())
    assert type(refused) is StoreError
    assert "refused a command: ERR unknown command" in str(refused)
    assert isinstance(loading, FeatureStoreUnavailable)
    assert "LOADING" in str(loading)
    assert pong == b"PONG"


async def _ping_error(url: str) -> BaseException:
    """What one PING to ``url`` raises."""
    client = _client(url)
    (error,) = await asyncio.gather(client.execute("PING"), return_exceptions=True)
    await client.aclose()
    assert isinstance(error, BaseException), f"PING answered {error!r}"
    return error


def test_a_reply_that_is_not_redis_protocol_closes_the_connection() -> None:
    async def scenario() -> BaseException:
        async with _fake_server(lambda _n, _d: b"?what\r\n") as url:
            return await _ping_error(url)

    error = asyncio.run(scenario())
    assert isinstance(error, FeatureStoreUnavailable)
    assert "bad reply" in str(error)


def test_nobody_listening_is_unavailable() -> None:
    async def scenario() -> BaseException:
        async with _fake_server(lambda _n, _d: None) as url:
            pass  # closed: the port refuses connections now
        return await _ping_error(url)

    error = asyncio.run(scenario())
    assert isinstance(error, FeatureStoreUnavailable)
    assert "redis at fake is unavailable" in str(error)
