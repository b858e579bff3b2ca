"""An ingest runner in a child process, for tests that kill it for real.

``python -m arrive.testing.servers.ingest_child '<json settings>'`` consumes a Redis stream
or a Kafka topic with :class:`~arrive.ingest.runner.IngestRunner`, applying events
with an :class:`EventIdLog` (an idempotent, file-backed apply) and dead-lettering to
a :class:`~arrive.ingest.deadletter.FileDeadLetter`. After ``block_after`` events it
writes ``BLOCKED`` on stdout and waits forever in the middle of ``apply``: the
parent then SIGKILLs it with applied but uncommitted events in hand.

Settings (JSON object): ``backend`` (``"redis"`` or ``"kafka"``), ``url`` (Redis URL
or Kafka bootstrap servers), ``stream`` (stream key or topic), ``group``,
``consumer`` (Redis) or ``partitions`` (Kafka), ``applied`` and ``dead`` (file
paths), ``block_after``, ``batch_size``, and optionally ``archive`` (an event archive
directory, :mod:`arrive.ingest.archive`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from arrive.clock import SystemClock
from arrive.ingest.archive import EventArchive, attach
from arrive.ingest.deadletter import FileDeadLetter
from arrive.ingest.pipeline import PipelineSettings, build_pipeline
from arrive.ingest.runner import Apply, IngestRunner
from arrive.ingest.source import EventSource
from arrive.schema.events import AnyEvent

BLOCKED = "BLOCKED"


class EventIdLog:
    """An idempotent apply: appends each event's id to ``path`` (fsynced per batch);
    the state is the *set* of ids, so applying an event twice changes nothing."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def apply(self, events: Sequence[AnyEvent]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(f"{event.event_id}\n" for event in events)
            handle.flush()
            os.fsync(handle.fileno())

    def ids(self) -> set[str]:
        if not self.path.exists():
            return set()
        return set(self.path.read_text(encoding="utf-8").split())


class CrashingApply:
    """Applies whole batches to ``log`` until batch number ``crash_at``, of which it
    applies only the first ``partial`` events before raising ``RuntimeError("killed")``:
    a consumer that dies mid-batch, before the batch is committed."""

    def __init__(self, log: EventIdLog, crash_at: int = 3, partial: int = 4) -> None:
        self.log = log
        self.crash_at = crash_at
        self.partial = partial
        self.batches = 0

    def __call__(self, events: Sequence[AnyEvent]) -> None:
        self.batches += 1
        if self.batches == self.crash_at:
            self.log.apply(events[: self.partial])
            raise RuntimeError("killed")
        self.log.apply(events)


class _BlockingApply:
    """Applies ``limit`` events through ``apply``, announces it and hangs mid-batch."""

    def __init__(self, apply: Apply, limit: int) -> None:
        self.apply = apply
        self.limit = limit
        self.count = 0

    def __call__(self, events: Sequence[AnyEvent]) -> None:
        room = self.limit - self.count
        self.apply(events[:room])
        self.count += min(room, len(events))
        if self.count >= self.limit:
            sys.stdout.write(f"{BLOCKED}\n")
            sys.stdout.flush()
            threading.Event().wait()


def open_source(settings: dict[str, Any]) -> EventSource:
    """The source the settings describe."""
    if settings["backend"] == "redis":
        from arrive.ingest.redis_streams import RedisStreamSource

        return RedisStreamSource(
            settings["url"],
            settings["stream"],
            group=settings["group"],
            consumer=settings.get("consumer", "ingest-1"),
            claim_min_idle_ms=0,
        )
    from arrive.ingest.kafka import KafkaSource
    from arrive.testing.source_contract import FAST_FETCH_CONFIG

    return KafkaSource(
        settings["url"],
        settings["stream"],
        settings["group"],
        partitions=settings["partitions"],
        config=FAST_FETCH_CONFIG,
    )


def run_and_kill(settings: dict[str, Any], timeout_s: float = 60.0) -> None:
    """Start the child with ``settings``, wait until it is blocked mid-batch, SIGKILL it.

    Raises:
        AssertionError: the child exited before blocking (its stderr is in the message).
    """
    command = [sys.executable, "-m", __name__, msgspec.json.encode(settings).decode()]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = child.stdout.readline() if child.stdout else b""
        child.kill()  # SIGKILL: no handler, no flush, no commit
        _, stderr = child.communicate(timeout=timeout_s)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if line.strip() != BLOCKED.encode():
        raise AssertionError(f"the ingest child exited before blocking: {stderr.decode()[-2000:]}")


def feature_runner(settings: dict[str, Any], source: EventSource) -> IngestRunner:
    """A runner that applies events to online features in Redis (``settings["store"]``
    URL, ``settings["prefix"]``), checkpointing to ``settings["state"]`` every batch."""
    from arrive.store.redis import RedisStore, RedisStoreConfig

    store = RedisStore(RedisStoreConfig(url=settings["store"], key_prefix=settings["prefix"]))
    pipeline = build_pipeline(
        source,
        store,
        FileDeadLetter(Path(settings["dead"])),
        SystemClock(),
        PipelineSettings(
            lateness_s=settings.get("lateness_s", 60.0),
            batch_size=settings["batch_size"],
            poll_timeout_s=0.2,
            state_path=Path(settings["state"]),
            checkpoint_s=0.0,
        ),
    )
    if "block_after" in settings:
        pipeline.runner.apply = _BlockingApply(pipeline.sink, settings["block_after"])
    return pipeline.runner


def main(argv: Sequence[str]) -> None:
    settings: dict[str, Any] = msgspec.json.decode(argv[0])
    source = open_source(settings)
    if "store" in settings:
        feature_runner(settings, source).run()
        return
    log = EventIdLog(Path(settings["applied"]))
    apply = _BlockingApply(log.apply, settings["block_after"])
    runner = IngestRunner(
        source,
        apply,
        FileDeadLetter(Path(settings["dead"])),
        SystemClock(),
        batch_size=settings["batch_size"],
        poll_timeout_s=0.5,
    )
    if "archive" in settings:
        attach(runner, EventArchive(Path(settings["archive"])))
    runner.run()


if __name__ == "__main__":
    main(sys.argv[1:])
