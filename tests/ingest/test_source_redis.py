"""RedisStreamSource specifics: group creation, dead consumers, odd entries, errors."""

from __future__ import annotations

import pytest
import redis

from arrive.errors import SourceUnavailable
from arrive.ingest.redis_streams import RedisStreamProducer, RedisStreamSource
from arrive.testing.source_contract import contract_events, drain, event_ids, unique_name

pytestmark = pytest.mark.redis


@pytest.fixture
def stream(redis_url: str) -> str:
    return unique_name("redis-source")


def _publish(url: str, stream: str, n: int) -> list[str]:
    producer = RedisStreamProducer(url, stream)
    ids = producer.publish(contract_events(n))
    producer.close()
    return ids


def test_the_group_is_created_once_and_then_reused(redis_url: str, stream: str) -> None:
    RedisStreamSource(redis_url, stream, group="g").close()
    _publish(redis_url, stream, 3)
    source = RedisStreamSource(redis_url, stream, group="g")
    assert len(drain(source, 3)) == 3
    source.close()
    groups = redis.Redis.from_url(redis_url).xinfo_groups(stream)
    assert [g["name"] for g in groups] == [b"g"]


def test_a_new_consumer_takes_over_a_dead_consumers_pending_entries(
    redis_url: str, stream: str
) -> None:
    _publish(redis_url, stream, 10)
    dead = RedisStreamSource(redis_url, stream, consumer="a")
    taken = drain(dead, 6)
    dead.close()  # died holding 6 unacknowledged entries
    heir = RedisStreamSource(redis_url, stream, consumer="b", claim_min_idle_ms=0)
    got = drain(heir, 10)
    heir.close()
    assert event_ids(got) == [f"e{i:05d}" for i in range(10)]
    assert set(event_ids(taken)) <= set(event_ids(got))


def test_pending_entries_of_a_recently_active_consumer_are_left_alone(
    redis_url: str, stream: str
) -> None:
    _publish(redis_url, stream, 4)
    busy = RedisStreamSource(redis_url, stream, consumer="a")
    drain(busy, 4)
    other = RedisStreamSource(redis_url, stream, consumer="b", claim_min_idle_ms=60_000)
    assert other.poll(10, 0.05) == []
    other.close()
    busy.close()


def test_an_entry_without_the_event_field_is_delivered_as_its_fields(
    redis_url: str, stream: str
) -> None:
    redis.Redis.from_url(redis_url).xadd(stream, {"something": "else"})
    source = RedisStreamSource(redis_url, stream)
    (message,) = drain(source, 1)
    source.close()
    assert message.payload == b'{"something":"else"}'


def test_an_entry_deleted_before_acknowledgement_comes_back_empty(
    redis_url: str, stream: str
) -> None:
    (entry_id,) = _publish(redis_url, stream, 1)
    first = RedisStreamSource(redis_url, stream)
    drain(first, 1)
    first.close()
    redis.Redis.from_url(redis_url).xdel(stream, entry_id)
    restarted = RedisStreamSource(redis_url, stream)
    (message,) = drain(restarted, 1)
    restarted.close()
    assert (message.payload, message.position.offset) == (b"", entry_id)


def test_an_unreachable_server_is_reported_as_source_unavailable(
    redis_url: str, stream: str
) -> None:
    dead_url = "redis://127.0.0.1:1/0"
    with pytest.raises(SourceUnavailable, match=stream):
        RedisStreamSource(dead_url, stream)
