"""Dead letters: where events that cannot be applied go, with the reason, so none is lost.

The runner writes a batch's refused messages with :meth:`DeadLetter.write` and
commits the batch only after it returns, so every refused message is either in
the dead letter or will be delivered again.

Backends: :class:`MemoryDeadLetter` (tests), :class:`FileDeadLetter` (JSON lines),
:class:`RedisStreamDeadLetter` (``XADD <stream>:dead``) and :class:`KafkaDeadLetter`
(``<topic>.dead``). The vendor clients are imported only by the backends that need them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec

from arrive.errors import SourceUnavailable
from arrive.ingest.source import Position

if TYPE_CHECKING:
    import redis
    from confluent_kafka import KafkaError, Message, Producer
    from redis.typing import EncodableT, FieldT


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One refused message.

    Attributes:
        reason: why it was refused.
        field: dotted path of the offending field (``"$"`` for the whole message).
        payload: the raw bytes exactly as received.
        position: where it sat in its source.
        time: when it was refused (UTC).
        key: the message's key, if the source had one.
    """

    reason: str
    field: str
    payload: bytes
    position: Position
    time: datetime
    key: bytes | None = None

    def to_dict(self, max_payload_bytes: int | None = None) -> dict[str, str]:
        """JSON-ready form: the payload as ``payload_text`` when it is UTF-8, else
        as ``payload_base64``.

        Args:
            max_payload_bytes: keep at most this many bytes of the payload (``None``:
                all); a longer one is cut, and ``payload_size`` (its length) and
                ``payload_sha256`` say what the whole one was.
        """
        payload = self.payload
        out = {
            "reason": self.reason,
            "field": self.field,
            "position": str(self.position),
            "stream": self.position.stream,
            "partition": str(self.position.partition),
            "offset": str(self.position.offset),
            "time": self.time.isoformat(),
        }
        if max_payload_bytes is not None and len(payload) > max_payload_bytes:
            out["payload_size"] = str(len(payload))
            out["payload_sha256"] = hashlib.sha256(payload).hexdigest()
            payload = payload[:max_payload_bytes]
        try:
            out["payload_text"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            out["payload_base64"] = base64.b64encode(payload).decode("ascii")
        return out

    def to_json(self, max_payload_bytes: int | None = None) -> bytes:
        return msgspec.json.encode(self.to_dict(max_payload_bytes))


def record_payload(record: dict[str, str]) -> bytes:
    """The raw payload of a record in :meth:`DeadLetterRecord.to_dict` form."""
    if "payload_text" in record:
        return record["payload_text"].encode("utf-8")
    try:
        return base64.b64decode(record["payload_base64"], validate=True)
    except (KeyError, binascii.Error) as exc:
        raise ValueError("dead-letter record has no readable payload") from exc


class DeadLetter(Protocol):
    """Durable storage for refused messages.

    To implement, provide at least ``write(records)``, which returns only once the
    records are durably stored (raising otherwise, so the batch is not committed),
    and ``close()``. Not thread-safe.
    """

    def write(self, records: Sequence[DeadLetterRecord]) -> None: ...

    def close(self) -> None: ...


@dataclass
class MemoryDeadLetter:
    """Keeps records in a list: for tests and dry runs."""

    records: list[DeadLetterRecord] = field(default_factory=list)

    def write(self, records: Sequence[DeadLetterRecord]) -> None:
        self.records.extend(records)

    def close(self) -> None:
        return None


class FileDeadLetter:
    """Appends one JSON object per record (:meth:`DeadLetterRecord.to_dict`) to ``path``,
    flushed and fsynced before :meth:`write` returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, records: Sequence[DeadLetterRecord]) -> None:
        if not records:
            return
        lines = b"".join(record.to_json() + b"\n" for record in records)
        with self.path.open("ab") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        return None


def read_dead_letters(path: Path) -> list[dict[str, str]]:
    """The records of a :class:`FileDeadLetter` file, in the order written."""
    path = Path(path)
    if not path.exists():
        return []
    decoder = msgspec.json.Decoder(dict[str, str])
    return [decoder.decode(line) for line in path.read_bytes().splitlines() if line]


class RedisStreamDeadLetter:
    """Adds each record to the Redis stream ``<stream>:dead`` (fields as in
    :meth:`DeadLetterRecord.to_dict`, the payload as raw bytes under ``payload``),
    in one transaction.

    Raises:
        SourceUnavailable: Redis cannot be reached or refused the write.
    """

    def __init__(self, url: str, stream: str) -> None:
        import redis as redis_lib

        self.key = f"{stream}:dead"
        self._redis: redis.Redis = redis_lib.Redis.from_url(url, socket_connect_timeout=5.0)

    def write(self, records: Sequence[DeadLetterRecord]) -> None:
        if not records:
            return
        from arrive.ingest.redis_streams import translate_redis_errors

        pipe = self._redis.pipeline(transaction=True)
        for record in records:
            fields: dict[FieldT, EncodableT] = {
                k: v for k, v in record.to_dict().items() if not k.startswith("payload_")
            }
            fields["payload"] = record.payload
            pipe.xadd(self.key, fields)
        with translate_redis_errors(f"redis dead letter {self.key}"):
            pipe.execute()

    def close(self) -> None:
        self._redis.close()


class KafkaDeadLetter:
    """Produces each record as JSON (:meth:`DeadLetterRecord.to_json`) to ``<topic>.dead``,
    keyed like the original message, and flushes before :meth:`write` returns.

    A payload longer than ``max_payload_bytes`` is cut in the record (which says its
    size and SHA-256; the whole message stays at its position in the source topic):
    brokers refuse messages over ~1 MB by default, and a dead letter that cannot be
    written would stop the stream at every restart.

    Args:
        bootstrap_servers: ``host:port[,host:port…]``.
        topic: the source topic; records go to ``<topic>.dead`` (which must exist or
            be auto-created by the broker).
        config: extra librdkafka producer settings.
        flush_timeout_s: how long to wait for the broker to acknowledge.
        max_payload_bytes: most payload bytes kept in a record.

    Raises:
        SourceUnavailable: a record was not acknowledged in time or was refused.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        config: dict[str, str | int | float | bool] | None = None,
        flush_timeout_s: float = 30.0,
        max_payload_bytes: int = 256 * 1024,
    ) -> None:
        from confluent_kafka import Producer

        self.topic = f"{topic}.dead"
        settings = {
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",
            "logger": logging.getLogger("arrive.ingest.kafka.librdkafka"),
            **(config or {}),
        }
        self._producer: Producer = Producer(settings)
        self._flush_timeout_s = flush_timeout_s
        self._max_payload_bytes = max_payload_bytes
        self._failures: list[str] = []

    def write(self, records: Sequence[DeadLetterRecord]) -> None:
        if not records:
            return
        from confluent_kafka import KafkaException

        self._failures.clear()
        try:
            for record in records:
                value = record.to_json(self._max_payload_bytes)
                self._producer.produce(
                    self.topic, value=value, key=record.key, on_delivery=self._delivered
                )
        except (KafkaException, BufferError) as exc:
            raise SourceUnavailable(f"kafka dead letter {self.topic}: {exc}") from exc
        left = self._producer.flush(self._flush_timeout_s)
        if left or self._failures:
            reason = self._failures[0] if self._failures else f"{left} not acknowledged"
            raise SourceUnavailable(f"kafka dead letter {self.topic}: {reason}")

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))

    def close(self) -> None:
        """Drop records still unsent: only a failed :meth:`write` leaves any, and its
        batch was not committed, so they will be dead-lettered again after a restart."""
        self._producer.purge()
        self._producer.flush(0)
