"""KafkaSource specifics: keyed partitioning and the consumer-group (subscribe) mode."""

from __future__ import annotations

from collections import defaultdict

import pytest

from arrive.ingest.kafka import KafkaEventProducer, KafkaSource
from arrive.ingest.source import entity_key
from arrive.schema.codec import decode_event
from arrive.testing.servers.kafka_broker import FAST_GROUP_CONFIG, create_topic
from arrive.testing.source_contract import (
    FAST_FETCH_CONFIG,
    contract_events,
    drain,
    event_ids,
    unique_name,
)

pytestmark = pytest.mark.kafka


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = unique_name("kafka-source")
    create_topic(kafka_bootstrap, name, partitions=3)
    return name


def test_events_are_keyed_by_entity_so_each_key_stays_in_one_partition(
    kafka_bootstrap: str, topic: str
) -> None:
    events = contract_events(60, keys=7)
    KafkaEventProducer(kafka_bootstrap, topic).publish(events)
    source = KafkaSource(
        kafka_bootstrap, topic, "keys", partitions=[0, 1, 2], config=FAST_FETCH_CONFIG
    )
    got = drain(source, 60)
    source.close()
    partitions: dict[str, set[int]] = defaultdict(set)
    for message in got:
        key = entity_key(decode_event(message.payload))
        assert message.key == key.encode()
        partitions[key].add(message.position.partition)
    assert all(len(p) == 1 for p in partitions.values())
    assert len({p for ps in partitions.values() for p in ps}) > 1


def test_a_group_member_commits_and_the_group_resumes_after_its_commit(
    kafka_bootstrap: str, topic: str
) -> None:
    events = contract_events(30)
    KafkaEventProducer(kafka_bootstrap, topic).publish(events)
    member = KafkaSource(
        kafka_bootstrap, topic, "members", config={**FAST_GROUP_CONFIG, **FAST_FETCH_CONFIG}
    )
    first = drain(member, 18)  # waits for the group join, then the fetch
    member.commit([m.position for m in first])
    member.close()
    resumed = KafkaSource(
        kafka_bootstrap, topic, "members", partitions=[0, 1, 2], config=FAST_FETCH_CONFIG
    )
    rest = drain(resumed, 12)
    resumed.close()
    assert sorted(event_ids(first) + event_ids(rest)) == [e.event_id for e in events]
