"""Kafka: a consumer :class:`~arrive.ingest.source.EventSource` and a keyed producer.

Message values are events' canonical JSON; keys are
:func:`~arrive.ingest.source.entity_key`, so all events of one order (or courier,
or market) land in one partition and keep their order.

:class:`KafkaSource` never auto-commits: offsets are committed synchronously, only
when the runner commits a batch it has applied. It either joins its consumer group
(``subscribe``: partitions are shared among the group's members) or reads explicit
partitions (``assign``: no group join, still resuming from the group's committed
offsets). In-flight messages are bounded by the runner's batch size plus
librdkafka's prefetch queue (``max_prefetch_kb``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from confluent_kafka import (
    OFFSET_STORED,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from arrive.errors import SourceUnavailable
from arrive.ingest.source import Position, RawMessage, entity_key
from arrive.schema.codec import encode_event
from arrive.schema.events import Event

logger = logging.getLogger(__name__)
#: librdkafka's own log lines go to Python logging under this name, not to stderr.
client_logger = logging.getLogger(f"{__name__}.librdkafka")

ClientConfig = Mapping[str, str | int | float | bool]

#: Commit failures that only mean a rebalance took the partitions away: the new
#: owner will redeliver the batch, so they are logged, not raised.
_REBALANCED: Final = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
    }
)


class KafkaSource:
    """Consumes ``topic`` for consumer group ``group_id``, committing only on :meth:`commit`.

    Args:
        bootstrap_servers: ``host:port[,host:port…]``.
        topic: the topic to read.
        group_id: the consumer group whose committed offsets are used and advanced.
        partitions: ``None`` to join the group and be given partitions (``subscribe``);
            a list of partition numbers to read exactly those (``assign``, no group join).
        config: extra librdkafka consumer settings (e.g. ``session.timeout.ms``);
            ``enable.auto.commit`` is always off.
        max_prefetch_kb: bound on librdkafka's prefetch queue per partition.

    Raises:
        SourceUnavailable: the consumer cannot be created, hits a fatal error, or a
            commit is refused for a reason other than a rebalance.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        *,
        partitions: Sequence[int] | None = None,
        config: ClientConfig | None = None,
        max_prefetch_kb: int = 16_384,
    ) -> None:
        self.topic = topic
        settings = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "queued.max.messages.kbytes": max_prefetch_kb,
            "logger": client_logger,
            **(config or {}),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
        try:
            self._consumer = Consumer(settings)
            self._start(partitions)
        except KafkaException as exc:
            raise SourceUnavailable(f"kafka topic {topic}: {exc}") from exc
        self._closed = False

    def poll(self, max_events: int, timeout_s: float) -> list[RawMessage]:
        try:
            messages = self._consumer.consume(num_messages=max_events, timeout=timeout_s)
        except KafkaException as exc:
            raise SourceUnavailable(f"kafka topic {self.topic}: {exc}") from exc
        return [raw for message in messages if (raw := self._raw(message)) is not None]

    def commit(self, positions: Sequence[Position]) -> None:
        offsets = _next_offsets(positions)
        if not offsets:
            return
        try:
            committed = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self._commit_failed(exc.args[0] if exc.args else None, exc)
            return
        for partition in committed or []:
            if partition.error is not None:
                self._commit_failed(partition.error, None)

    @property
    def exhausted(self) -> bool:
        return False

    def close(self) -> None:
        """Leave the group without committing anything."""
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def _start(self, partitions: Sequence[int] | None) -> None:
        if partitions is None:
            self._consumer.subscribe([self.topic])
        else:
            self._consumer.assign(
                [TopicPartition(self.topic, p, OFFSET_STORED) for p in partitions]
            )

    def _raw(self, message: Message) -> RawMessage | None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise SourceUnavailable(f"kafka topic {self.topic}: {error.str()}")
            logger.warning("kafka topic %s: %s", self.topic, error.str())
            return None
        topic = message.topic() or self.topic
        position = Position(topic, _int(message.partition()), _int(message.offset()))
        return RawMessage(message.value() or b"", position, message.key())

    def _commit_failed(self, error: object, cause: Exception | None) -> None:
        if isinstance(error, KafkaError) and error.code() in _REBALANCED:
            logger.warning(
                "kafka topic %s: commit refused after a rebalance (%s)", self.topic, error
            )
            return
        raise SourceUnavailable(f"kafka topic {self.topic}: commit failed: {error}") from cause


class KafkaEventProducer:
    """Produces events to ``topic``, keyed by :func:`~arrive.ingest.source.entity_key`.

    Args:
        bootstrap_servers: ``host:port[,host:port…]``.
        topic: the topic to write.
        config: extra librdkafka producer settings.
        flush_timeout_s: how long :meth:`publish` waits for acknowledgements.

    Raises:
        SourceUnavailable: a message was refused or not acknowledged in time.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        config: ClientConfig | None = None,
        flush_timeout_s: float = 30.0,
    ) -> None:
        self.topic = topic
        self.flush_timeout_s = flush_timeout_s
        settings = {
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",
            "logger": client_logger,
            **(config or {}),
        }
        self._producer = Producer(settings)
        self._failures: list[str] = []

    def publish(self, events: Iterable[Event]) -> int:
        """Produce ``events`` in order and wait until all are acknowledged; returns the count."""
        return self.publish_raw((entity_key(e).encode(), encode_event(e)) for e in events)

    def publish_raw(self, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
        """Produce ``(key, value)`` pairs as they are (e.g. to test malformed input)."""
        self._failures.clear()
        count = 0
        for key, value in messages:
            self._produce(key, value)
            count += 1
        left = self._producer.flush(self.flush_timeout_s)
        if left or self._failures:
            reason = self._failures[0] if self._failures else f"{left} not acknowledged"
            raise SourceUnavailable(f"kafka topic {self.topic}: {reason}")
        return count

    def close(self) -> None:
        self._producer.flush(self.flush_timeout_s)

    def _produce(self, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key, on_delivery=self._sent)
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(1.0)

    def _sent(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))


def _next_offsets(positions: Sequence[Position]) -> list[TopicPartition]:
    """One TopicPartition per partition, at the offset after the highest position."""
    highest: dict[tuple[str, int], int] = {}
    for position in positions:
        if isinstance(position.offset, int):
            key = (position.stream, position.partition)
            highest[key] = max(highest.get(key, -1), position.offset)
    return [TopicPartition(topic, part, offset + 1) for (topic, part), offset in highest.items()]


def _int(value: int | None) -> int:
    return -1 if value is None else value
