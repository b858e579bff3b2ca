"""Partitioned ingest over Kafka and Redis: the two stages of
:mod:`arrive.ingest.partitioned` wired to real consumers, one producer and Redis.

:class:`PartitionedIngest` alternates the route stage (an
:class:`~arrive.ingest.runner.IngestRunner` on the input topic, group ``G``) and the
own stage (a consumer of ``{topic}.owned``, group ``G.owners``, whose assignment
callbacks restore and save the owner engines). The order routes and the owner
checkpoints live in Redis under ``{prefix}:ingest:{G}:``, so any process of the group
can take any partition over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from arrive.clock import Clock
from arrive.errors import ConfigError, SourceUnavailable
from arrive.ingest.deadletter import DeadLetter
from arrive.ingest.kafka import ClientConfig, KafkaSource, client_logger
from arrive.ingest.partitioned import (
    Outgoing,
    OwnedMessage,
    Owners,
    Router,
    decode_checkpoint,
    encode_checkpoint,
)
from arrive.ingest.runner import IngestRunner
from arrive.store.base import OnlineStore

logger = logging.getLogger(__name__)

_ROUTE_TTL_S = 3 * 86400  # longer than any order's lifecycle and the engine's retention


class RedisRoutes:
    """The order → owners table in Redis (expiring after three days)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}route:"

    def get_many(self, order_ids: Sequence[str]) -> list[tuple[int, ...] | None]:
        values = self._client.mget([self._prefix + o for o in order_ids])
        return [_parts(v) for v in values]

    def put_many(self, routes: dict[str, tuple[int, ...]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for order_id, parts in routes.items():
            pipe.set(self._prefix + order_id, ",".join(map(str, parts)), ex=_ROUTE_TTL_S)
        pipe.execute()


def _parts(value: bytes | str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    return tuple(int(p) for p in text.split(",") if p)


class RedisCheckpoints:
    """Owner checkpoints (offset and engine state) in Redis, one key per partition."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}checkpoint:"

    def load(self, partition: int) -> tuple[int, bytes] | None:
        data = self._client.get(f"{self._prefix}{partition}")
        if data is None:
            return None
        return decode_checkpoint(data.encode() if isinstance(data, str) else data)

    def save(self, partition: int, offset: int, state: bytes) -> None:
        self._client.set(f"{self._prefix}{partition}", encode_checkpoint(offset, state))


class OwnedPublisher:
    """Sends internal messages to explicit partitions and waits for every acknowledgement."""

    def __init__(self, bootstrap: str, topic: str, config: ClientConfig | None = None) -> None:
        self.topic = topic
        settings = {"bootstrap.servers": bootstrap, "acks": "all", "logger": client_logger}
        self._producer = Producer({**settings, **(config or {})})
        self._failures: list[str] = []

    def __call__(self, messages: list[Outgoing]) -> None:
        self._failures.clear()
        for partition, key, value in messages:
            while True:
                try:
                    self._producer.produce(
                        self.topic, value, key, partition=partition, on_delivery=self._sent
                    )
                    break
                except BufferError:
                    self._producer.poll(0.5)
        left = self._producer.flush(30.0)
        if left or self._failures:
            reason = self._failures[0] if self._failures else f"{left} not acknowledged"
            raise SourceUnavailable(f"kafka topic {self.topic}: {reason}")

    def _sent(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))


@dataclass(frozen=True, slots=True)
class PartitionedSettings:
    """Where and how a partitioned ingest process runs.

    Attributes:
        bootstrap: Kafka ``host:port``.
        topic: the input topic; the internal one is ``{topic}.owned`` (must exist).
        group: the input consumer group (the owners' group is ``{group}.owners``).
        redis_url: where routes and owner checkpoints are kept.
        timezone, lateness_s: as the engine's.
        batch_size: most messages per poll, each stage.
        poll_timeout_s: how long each stage's poll waits.
        checkpoint_s: seconds between owner checkpoints.
        follow_clock: when idle, owners' watermarks follow the clock (live streams).
        kafka_config: extra librdkafka settings for every client.
    """

    bootstrap: str
    topic: str
    group: str
    redis_url: str
    timezone: str = "UTC"
    lateness_s: float = 60.0
    batch_size: int = 5000
    poll_timeout_s: float = 0.2
    checkpoint_s: float = 5.0
    follow_clock: bool = False
    kafka_config: ClientConfig | None = None

    @property
    def owned_topic(self) -> str:
        return f"{self.topic}.owned"


class PartitionedIngest:
    """One process of partitioned ingest: the route stage and the own stage.

    Raises:
        ConfigError: the internal topic is missing.
        SourceUnavailable: Kafka or Redis cannot be reached.
    """

    def __init__(
        self, settings: PartitionedSettings, store: OnlineStore, dead: DeadLetter, clock: Clock
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._stop = threading.Event()
        self._redis = redis.Redis.from_url(settings.redis_url, protocol=2)
        prefix = f"arrive:ingest:{settings.group}:"
        config: dict[str, Any] = dict(settings.kafka_config or {})
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap,
                "group.id": f"{settings.group}.owners",
                "auto.offset.reset": "earliest",
                "logger": client_logger,
                **config,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        )
        try:
            self.partitions = self._owned_partitions()
        except (ConfigError, SourceUnavailable):
            self._consumer.close()
            self._redis.close()
            raise
        self.owners = Owners(
            store,
            RedisCheckpoints(self._redis, prefix),
            self.partitions,
            dead,
            clock,
            engine_settings={
                "local_timezone": settings.timezone,
                "lateness_s": settings.lateness_s,
            },
            checkpoint_s=settings.checkpoint_s,
        )
        publisher = OwnedPublisher(settings.bootstrap, settings.owned_topic, config)
        self.router = Router(
            publisher, RedisRoutes(self._redis, prefix), self.partitions, settings.timezone
        )
        source = KafkaSource(settings.bootstrap, settings.topic, settings.group, config=config)
        self.runner = IngestRunner(
            source,
            self.router,
            dead,
            clock,
            batch_size=settings.batch_size,
            poll_timeout_s=0.0,  # never waits: see run_once
        )
        self._consumer.subscribe(
            [settings.owned_topic],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )

    def run(self) -> None:
        """Both stages, turn about, until :meth:`stop`; then save and leave the groups."""
        while not self._stop.is_set():
            self.run_once()
        self._checkpoint()

    def run_once(self) -> int:
        """One batch of each stage; returns how many messages they held together. Only
        the own stage's poll waits (up to ``poll_timeout_s``), and only when the route
        stage found nothing: a busy process never idles in one stage's poll while the
        other has work."""
        routed = self.runner.run_once()
        owned = self._own_once(0.0 if routed else self.settings.poll_timeout_s)
        return routed + owned

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Leave both groups (the owners' revoke callback saves their engines)."""
        self._consumer.close()
        self.runner.source.close()
        self.owners.dead_letter.close()
        self.owners.store.close()
        self._redis.close()

    def _own_once(self, timeout_s: float) -> int:
        try:
            # One message (waiting), then whatever else is there: consume() of n would
            # wait the whole timeout for n to arrive.
            polled = self._consumer.consume(1, timeout_s)
            if polled and self.settings.batch_size > 1:
                polled += self._consumer.consume(self.settings.batch_size - 1, 0.0)
        except KafkaException as exc:
            raise SourceUnavailable(f"kafka topic {self.settings.owned_topic}: {exc}") from exc
        messages = [m for raw in polled if (m := self._message(raw)) is not None]
        if messages:
            self.owners.apply(messages)
        elif self.settings.follow_clock:
            self.owners.idle(self.clock.now())
        if self.owners.due():
            self._checkpoint()
        return len(messages)

    def _checkpoint(self) -> None:
        saved = self.owners.save_all()
        offsets = [TopicPartition(self.settings.owned_topic, p, o) for p, o in saved.items()]
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:  # informational: the checkpoints hold the offsets
                logger.warning("owners: commit refused (%s)", exc)

    def _message(self, raw: Message) -> OwnedMessage | None:
        error = raw.error()
        if error is not None:
            if error.fatal():
                raise SourceUnavailable(f"kafka topic {self.settings.owned_topic}: {error.str()}")
            return None
        return OwnedMessage(raw.partition() or 0, raw.offset() or 0, raw.key(), raw.value() or b"")

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            offset = self.owners.assign(tp.partition)
            tp.offset = OFFSET_BEGINNING if offset is None else offset
        consumer.assign(partitions)
        logger.info("owners: assigned %s", sorted(tp.partition for tp in partitions))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.owners.revoke(tp.partition)
        logger.info("owners: revoked %s", sorted(tp.partition for tp in partitions))

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.owners.drop(tp.partition)
        logger.warning(
            "owners: lost %s (session expired)", sorted(tp.partition for tp in partitions)
        )

    def _owned_partitions(self) -> int:
        topic = self.settings.owned_topic
        try:
            meta = self._consumer.list_topics(topic, timeout=10.0).topics.get(topic)
        except KafkaException as exc:
            raise SourceUnavailable(f"kafka: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            raise ConfigError(
                f"--source: the internal topic {topic} is missing; create it with as many "
                "partitions as owners you may run (e.g. 12)"
            )
        return len(meta.partitions)
