"""Redis Streams: a consumer-group :class:`~arrive.ingest.source.EventSource` and a producer.

Each stream entry holds one event's canonical JSON under the field ``event``.
:class:`RedisStreamSource` reads with ``XREADGROUP`` and acknowledges with ``XACK``
only when the runner commits. On start it first takes over with ``XAUTOCLAIM`` the
pending (delivered, unacknowledged) entries of other consumers idle for at least
``claim_min_idle_ms`` (a consumer that died), then re-reads all its own pending
entries in stream order, and only then reads new entries: a restarted consumer
loses nothing, and each pending entry comes once.

An entry without the ``event`` field is delivered as the JSON of its fields, and an
entry deleted from the stream before it was acknowledged as an empty payload: the
runner dead-letters both with their positions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, Literal

import msgspec
import redis

from arrive.errors import SourceUnavailable
from arrive.ingest.source import Position, RawMessage
from arrive.schema.codec import encode_event
from arrive.schema.events import Event

logger = logging.getLogger(__name__)

EVENT_FIELD: Final = "event"
_ACK_CHUNK: Final = 1000
_DONE: Final = b"0-0"
_CLAIM_PAGE: Final = 1000

Phase = Literal["own", "claim", "new"]


class RedisStreamSource:
    """Consumes ``stream`` as ``consumer`` of ``group`` (created at the start of the
    stream if missing).

    Args:
        url: ``redis://host:port/db``.
        stream: the stream key.
        group: the consumer group; consumers of one group share the work.
        consumer: this consumer's name; reuse it after a restart to re-read its own
            pending entries at once.
        claim_min_idle_ms: on start, take over other consumers' pending entries idle
            at least this long (``0``: all of them, for a lone consumer).
        field: the entry field holding the event JSON.

    Raises:
        SourceUnavailable: Redis cannot be reached or refused a command.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        group: str = "arrive-ingest",
        consumer: str = "ingest-1",
        claim_min_idle_ms: int = 60_000,
        field: str = EVENT_FIELD,
    ) -> None:
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.claim_min_idle_ms = claim_min_idle_ms
        self._field = field.encode()
        self._phase: Phase = "claim"
        self._own_cursor: bytes = b"0"
        self._claim_cursor: bytes = _DONE
        self._redis = redis.Redis.from_url(url, protocol=2, socket_connect_timeout=5.0)
        with self._translated():
            self._ensure_group()

    def poll(self, max_events: int, timeout_s: float) -> list[RawMessage]:
        with self._translated():
            while self._phase == "claim":
                deleted = self._claim()
                if deleted:
                    return deleted
            if self._phase == "own":
                batch = self._read_own(max_events)
                if batch:
                    return batch
                self._phase = "new"
            return self._read_new(max_events, timeout_s)

    def commit(self, positions: Sequence[Position]) -> None:
        ids = [str(p.offset) for p in positions]
        with self._translated():
            for start in range(0, len(ids), _ACK_CHUNK):
                self._redis.xack(self.stream, self.group, *ids[start : start + _ACK_CHUNK])

    @property
    def exhausted(self) -> bool:
        return False

    def close(self) -> None:
        self._redis.close()

    def _ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _read_own(self, max_events: int) -> list[RawMessage]:
        reply = self._redis.xreadgroup(
            self.group, self.consumer, {self.stream: self._own_cursor}, count=max_events
        )
        batch = self._messages(_entries(reply))
        if batch:
            self._own_cursor = str(batch[-1].position.offset).encode()
        return batch

    def _claim(self) -> list[RawMessage]:
        """Take over one page of other consumers' idle pending entries (delivered later,
        with this consumer's own pending ones, in stream order); returns the entries that
        were deleted from the stream before anyone acknowledged them."""
        cursor, _, deleted = self._redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_min_idle_ms,
            start_id=self._claim_cursor,
            count=_CLAIM_PAGE,
        )
        self._claim_cursor = cursor
        if cursor == _DONE:
            self._phase = "own"
        if deleted:
            logger.warning("%s: %d pending entries were deleted unread", self.stream, len(deleted))
        return self._messages((entry_id, {}) for entry_id in deleted)

    def _read_new(self, max_events: int, timeout_s: float) -> list[RawMessage]:
        block_ms = int(timeout_s * 1000)
        reply = self._redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=max_events,
            block=block_ms if block_ms > 0 else None,
        )
        return self._messages(_entries(reply))

    def _messages(self, entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[RawMessage]:
        return [
            RawMessage(self._payload(fields), Position(self.stream, 0, entry_id.decode()))
            for entry_id, fields in entries
        ]

    def _payload(self, fields: dict[bytes, bytes] | None) -> bytes:
        if not fields:
            return b""
        value = fields.get(self._field)
        if value is not None:
            return value
        return msgspec.json.encode(
            {
                k.decode(errors="backslashreplace"): v.decode(errors="backslashreplace")
                for k, v in fields.items()
            }
        )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        with translate_redis_errors(f"redis stream {self.stream} (group {self.group})"):
            yield


class RedisStreamProducer:
    """Appends events to ``stream`` with ``XADD`` (one entry per event, field ``event``).

    Args:
        url: ``redis://host:port/db``.
        stream: the stream key.
        maxlen: trim the stream to about this many entries (``None``: never trim).

    Raises:
        SourceUnavailable: Redis cannot be reached or refused a command.
    """

    def __init__(self, url: str, stream: str, *, maxlen: int | None = None) -> None:
        self.stream = stream
        self.maxlen = maxlen
        self._redis = redis.Redis.from_url(url, protocol=2, socket_connect_timeout=5.0)

    def publish(self, events: Iterable[Event]) -> list[str]:
        """Append ``events`` in order; returns their entry ids."""
        return self.publish_raw(encode_event(event) for event in events)

    def publish_raw(self, payloads: Iterable[bytes]) -> list[str]:
        """Append raw payloads as they are (e.g. to test malformed input); returns entry ids."""
        ids: list[str] = []
        pipe = self._redis.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(self.stream, {EVENT_FIELD: payload}, maxlen=self.maxlen, approximate=True)
        with translate_redis_errors(f"redis stream {self.stream}"):
            ids.extend(entry_id.decode() for entry_id in pipe.execute())
        return ids

    def close(self) -> None:
        self._redis.close()


@contextlib.contextmanager
def translate_redis_errors(what: str) -> Iterator[None]:
    """Re-raise any Redis client error as :class:`~arrive.errors.SourceUnavailable`."""
    try:
        yield
    except redis.RedisError as exc:
        raise SourceUnavailable(f"{what}: {exc}") from exc


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of an ``XREADGROUP`` reply on one stream (RESP2 shape)."""
    if not reply:
        return []
    entries: list[tuple[bytes, dict[bytes, bytes]]] = reply[0][1]
    return entries
