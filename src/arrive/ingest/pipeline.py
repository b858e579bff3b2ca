"""The ingest pipeline, wired once: source → runner → feature sink → engine → store.

``arrive ingest``, the process harness of the kill tests, the tests and the
benchmarks all build their pipeline here, so a new part (a metric, a wrapper around
the store) is added in one place and each of them measures the code that runs in
production.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arrive.clock import Clock
from arrive.features.online.engine import OnlineEngine
from arrive.ingest.deadletter import DeadLetter
from arrive.ingest.feature_sink import FeatureSink
from arrive.ingest.runner import IngestRunner
from arrive.ingest.source import EventSource
from arrive.store.base import OnlineStore


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """How a pipeline runs; the defaults are those of the engine, sink and runner.

    Attributes:
        timezone: the marketplace's IANA zone (local-day features).
        lateness_s: how far behind the watermark an event may be and still apply.
        batch_size: most messages per poll.
        poll_timeout_s: how long a poll waits for the first message of a batch.
        max_future_s: refuse events more than this far after the clock (None: no limit).
        state_path: the engine's checkpoint file, resumed from when the pipeline is
            built (None: no checkpoints, a commit after every batch).
        checkpoint_s: seconds between checkpoints.
        follow_clock: when the source is idle, move event time to the clock minus the
            lateness so windows expire (live sources only, never a replay of the past).
    """

    timezone: str = "UTC"
    lateness_s: float = 60.0
    batch_size: int = 500
    poll_timeout_s: float = 1.0
    max_future_s: float | None = 300.0
    state_path: Path | None = None
    checkpoint_s: float = 5.0
    follow_clock: bool = False


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A built pipeline: its parts, whether it resumed from a checkpoint, and a close.

    Attributes:
        engine: the online engine (its ``store`` receives the features).
        sink: the runner's ``apply`` and checkpointer.
        runner: the consume → apply → commit loop.
        resumed: True if the engine was restored from ``state_path``.
    """

    engine: OnlineEngine
    sink: FeatureSink
    runner: IngestRunner
    resumed: bool

    def close(self) -> None:
        """Close the source, the dead letter and the store."""
        self.runner.source.close()
        self.sink.dead_letter.close()
        self.engine.store.close()


def build_pipeline(
    source: EventSource,
    store: OnlineStore,
    dead_letter: DeadLetter,
    clock: Clock,
    settings: PipelineSettings | None = None,
) -> Pipeline:
    """Wire ``source`` to ``store`` through the online engine, refused events to
    ``dead_letter``; the pipeline owns all three from here (see :meth:`Pipeline.close`).

    Raises:
        ConfigError: a setting out of range, or a checkpoint of other feature definitions.
        InputFileError: the checkpoint file cannot be read.
    """
    settings = settings or PipelineSettings()
    engine = OnlineEngine(store, local_timezone=settings.timezone, lateness_s=settings.lateness_s)
    sink = FeatureSink(
        engine, dead_letter, clock, state_path=settings.state_path, every_s=settings.checkpoint_s
    )
    resumed = sink.resume()
    runner = IngestRunner(
        source,
        sink,
        dead_letter,
        clock,
        max_future_s=settings.max_future_s,
        batch_size=settings.batch_size,
        poll_timeout_s=settings.poll_timeout_s,
        checkpointer=sink,
        on_idle=sink.idle if settings.follow_clock else None,
    )
    return Pipeline(engine, sink, runner, resumed)
