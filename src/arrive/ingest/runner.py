"""The ingest loop: poll → decode and validate → dead-letter → apply → commit.

One transport-neutral core for every :class:`~arrive.ingest.source.EventSource`.
The guarantees:

* a bad message (any bytes at all: empty, not UTF-8, malformed JSON, unknown type,
  missing or mistyped field, an event time too far in the future) never stops the
  stream and is never lost: it goes to the dead letter with its reason and raw payload;
* a batch is committed only after its valid events were applied and its refused
  messages durably dead-lettered, so a crash at any point means redelivery, never
  loss (at least once: ``apply`` must be idempotent, the runner does not dedupe);
* in-flight work is bounded by ``batch_size``: the next poll happens only after the
  previous batch was committed;
* a batch is never held back to fill up: the runner waits (up to ``poll_timeout_s``)
  for one message only, then takes whatever else is already there without waiting,
  so under a trickle each message is applied as soon as the batch before it is done,
  even from a source that fills a batch before returning it (Kafka's ``consume``);
  while more arrives, batches grow by themselves (up to ``batch_size``);
* a poll that brings nothing from a live source calls ``on_idle`` (e.g.
  :meth:`~arrive.ingest.feature_sink.FeatureSink.idle`, so event-time windows
  expire as the clock moves on) and commits what a due save allows;
* :meth:`IngestRunner.stop` (safe from a signal handler or another thread) lets the
  batch in hand finish and commit, then :meth:`IngestRunner.run` returns.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from arrive.clock import Clock
from arrive.errors import ConfigError, SchemaError
from arrive.ingest.deadletter import DeadLetter, DeadLetterRecord
from arrive.ingest.source import EventSource, Position, RawMessage
from arrive.schema.codec import decode_event
from arrive.schema.events import AnyEvent

logger = logging.getLogger(__name__)

Apply = Callable[[Sequence[AnyEvent]], None]


class Checkpointer(Protocol):
    """State that ``apply`` keeps outside the source, saved durably from time to time.

    With one, the runner commits the source only right after :meth:`save`, so the
    committed position never runs ahead of the saved state: a restart from the last
    save and the last commit redelivers exactly what the state has not seen (or a
    little more, which an idempotent ``apply`` absorbs).
    """

    def due(self) -> bool:
        """True when a save is wanted now (e.g. every few seconds)."""
        ...

    def save(self) -> None:
        """Save the state durably."""
        ...


@dataclass(frozen=True, slots=True)
class IngestStats:
    """A snapshot of a runner's progress.

    Attributes:
        messages: raw messages received.
        events_applied: events handed to ``apply`` (and committed).
        dead_lettered: messages written to the dead letter.
        batches: batches committed.
        applied_per_s: events applied per second over the last ``rate_window_s``.
        lag_s: now minus the event time of the last applied event (``None`` before any).
        last_event_time: event time of the last applied event.
    """

    messages: int
    events_applied: int
    dead_lettered: int
    batches: int
    applied_per_s: float
    lag_s: float | None
    last_event_time: datetime | None


class IngestProgress(NamedTuple):
    """A runner's progress as another thread may read it (:meth:`IngestRunner.progress`).

    Attributes:
        dead_lettered: messages the runner wrote to the dead letter.
        last_event_time: event time of the last applied event.
        committed_at: when the runner last saved and committed (None before the first).
    """

    dead_lettered: int
    last_event_time: datetime | None
    committed_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Decoded:
    events: list[AnyEvent]
    refused: list[DeadLetterRecord]


class IngestRunner:
    """Consume ``source``, apply valid events, dead-letter the rest, commit.

    Args:
        source: where raw messages come from (not closed by the runner).
        apply: takes a batch of valid events in source order; must be idempotent.
            If it raises, the batch is not committed and the error propagates.
        dead_letter: where refused messages go.
        clock: for the far-future check, lag and rates.
        max_future_s: refuse events whose time is more than this many seconds
            after ``clock.now()`` (``None``: no limit).
        batch_size: most messages per poll, hence the bound on in-flight messages.
        poll_timeout_s: how long a poll waits for the first message of a batch; also
            how quickly :meth:`stop` is seen and how often ``on_idle`` runs.
        rate_window_s: window of :attr:`IngestStats.applied_per_s`.
        checkpointer: when given, commits wait for its saves (see :class:`Checkpointer`).
        on_idle: called after a poll of a live source that brought nothing.

    Raises:
        ConfigError: a non-positive ``batch_size``, ``poll_timeout_s`` or negative
            ``max_future_s``.
    """

    def __init__(
        self,
        source: EventSource,
        apply: Apply,
        dead_letter: DeadLetter,
        clock: Clock,
        *,
        max_future_s: float | None = 300.0,
        batch_size: int = 500,
        poll_timeout_s: float = 1.0,
        rate_window_s: float = 60.0,
        checkpointer: Checkpointer | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        _check_settings(max_future_s, batch_size, poll_timeout_s)
        self.source = source
        self.apply = apply
        self.dead_letter = dead_letter
        self.clock = clock
        self.max_future_s = max_future_s
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.rate_window_s = rate_window_s
        self.checkpointer = checkpointer
        self.on_idle = on_idle
        self._uncommitted: list[Position] = []
        self._stop = threading.Event()
        self._counts = {"messages": 0, "applied": 0, "dead": 0, "batches": 0}
        self._last_event_time: datetime | None = None
        self.committed_at: datetime | None = None
        """When :meth:`flush` last saved and committed (None before the first)."""
        self._samples: deque[tuple[float, int]] = deque([(clock.monotonic(), 0)])

    def run(self, after_poll: Callable[[], None] | None = None) -> IngestStats:
        """Handle batches until :meth:`stop` is called or a finite source is exhausted,
        calling ``after_poll`` (e.g. a progress display) after every poll but the last."""
        while not self._stop.is_set():
            handled = self.run_once()
            if not handled and self.source.exhausted:
                break
            if after_poll is not None:
                after_poll()
        self.flush()
        return self.stats()

    def run_once(self) -> int:
        """Poll one batch and handle it to the commit; returns how many messages it held."""
        batch = self._poll()
        if not batch:
            self._idle()
            return 0
        decoded = self._decode(batch)
        if decoded.refused:
            self.dead_letter.write(decoded.refused)
            _log_refused(decoded.refused)
        if decoded.events:
            self.apply(decoded.events)
        self._uncommitted += [message.position for message in batch]
        if self.checkpointer is None or self.checkpointer.due():
            self.flush()
        self._record(batch, decoded)
        return len(batch)

    def _poll(self) -> list[RawMessage]:
        """One message (waiting for it), then whatever else is there (not waiting)."""
        batch = self.source.poll(1, self.poll_timeout_s)
        if batch and self.batch_size > 1:
            batch += self.source.poll(self.batch_size - len(batch), 0.0)
        return batch

    def _idle(self) -> None:
        """Nothing arrived: commit what a due save allows, and tell ``on_idle``."""
        if self._uncommitted and (self.checkpointer is None or self.checkpointer.due()):
            self.flush()
        if self.on_idle is not None and not self.source.exhausted:
            self.on_idle()

    def flush(self) -> None:
        """Save the checkpointer's state (if any), then commit everything applied."""
        if self.checkpointer is not None:
            self.checkpointer.save()
        if self._uncommitted:
            self.source.commit(self._uncommitted)
            self._uncommitted = []
        self.committed_at = self.clock.now()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand is committed."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stats(self) -> IngestStats:
        """Counters, rate and lag as of now."""
        now_mono = self.clock.monotonic()
        first_mono, first_applied = self._baseline(now_mono)
        elapsed_s = now_mono - first_mono
        rate = (self._counts["applied"] - first_applied) / elapsed_s if elapsed_s > 0 else 0.0
        last = self._last_event_time
        return IngestStats(
            messages=self._counts["messages"],
            events_applied=self._counts["applied"],
            dead_lettered=self._counts["dead"],
            batches=self._counts["batches"],
            applied_per_s=rate,
            lag_s=(self.clock.now() - last).total_seconds() if last else None,
            last_event_time=last,
        )

    def progress(self) -> IngestProgress:
        """What :meth:`stats` counts, without the rate: safe from another thread (a
        metrics scrape) while the runner runs."""
        return IngestProgress(self._counts["dead"], self._last_event_time, self.committed_at)

    def _baseline(self, now_mono: float) -> tuple[float, int]:
        """The latest sample at least ``rate_window_s`` old (else the oldest one)."""
        cutoff = now_mono - self.rate_window_s
        baseline = self._samples[0]
        for sample in self._samples:
            if sample[0] > cutoff:
                break
            baseline = sample
        return baseline

    def _decode(self, batch: list[RawMessage]) -> _Decoded:
        now = self.clock.now()
        limit_s = self.max_future_s
        horizon = None if limit_s is None else now + timedelta(seconds=limit_s)
        events: list[AnyEvent] = []
        refused: list[DeadLetterRecord] = []
        for message in batch:
            try:
                event = _decoded(message)
            except SchemaError as exc:
                refused.append(_refuse(message, exc.field, exc.reason, now))
                continue
            if horizon is not None and event.event_time > horizon:
                ahead_s = (event.event_time - now).total_seconds()
                reason = f"{ahead_s:.0f} s in the future (limit {limit_s:g} s)"
                refused.append(_refuse(message, "event_time", reason, now))
                continue
            events.append(event)
        return _Decoded(events, refused)

    def _record(self, batch: list[RawMessage], decoded: _Decoded) -> None:
        self._counts["messages"] += len(batch)
        self._counts["applied"] += len(decoded.events)
        self._counts["dead"] += len(decoded.refused)
        self._counts["batches"] += 1
        if decoded.events:
            self._last_event_time = decoded.events[-1].event_time
        now_mono = self.clock.monotonic()
        self._samples.append((now_mono, self._counts["applied"]))
        while len(self._samples) > 2 and self._samples[1][0] <= now_mono - self.rate_window_s:
            self._samples.popleft()


def _decoded(message: RawMessage) -> AnyEvent:
    """The message's event; any failure to decode it is a :class:`SchemaError`.

    The codec raises nothing else (tests/schema fuzz), but a decoder bug must cost one dead
    letter, not the stream: a batch that cannot be decoded is never committed, so it
    would stop ingestion at every restart.
    """
    try:
        return decode_event(message.payload)
    except SchemaError:
        raise
    except Exception as exc:
        logger.exception("decoding the message at %s failed", message.position)
        raise SchemaError("$", f"cannot be decoded ({type(exc).__name__}: {exc})") from exc


def _refuse(message: RawMessage, field: str, reason: str, now: datetime) -> DeadLetterRecord:
    return DeadLetterRecord(
        reason=reason,
        field=field,
        payload=message.payload,
        position=message.position,
        time=now,
        key=message.key,
    )


def _log_refused(records: list[DeadLetterRecord]) -> None:
    first = records[0]
    logger.warning(
        "dead-lettered %d message(s); first at %s: %s: %s",
        len(records),
        first.position,
        first.field,
        first.reason,
    )


def _check_settings(max_future_s: float | None, batch_size: int, poll_timeout_s: float) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be at least 1, got {batch_size}")
    if poll_timeout_s < 0:
        raise ConfigError(f"poll_timeout_s: must not be negative, got {poll_timeout_s}")
    if max_future_s is not None and max_future_s < 0:
        raise ConfigError(f"max_future_s: must not be negative, got {max_future_s}")
