"""``arrive ingest``: keep online features current from an event stream."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

import click
from rich.console import Console

from arrive.clock import SystemClock
from arrive.datadir import local_timezone
from arrive.features.online.engine import OnlineEngine
from arrive.ingest.archive import EventArchive, attach
from arrive.ingest.deadletter import FileDeadLetter
from arrive.ingest.endpoints import kafka_parts, open_source
from arrive.ingest.pipeline import PipelineSettings, build_pipeline
from arrive.ingest.runner import IngestRunner, IngestStats
from arrive.monitoring.ingest_metrics import Counted, IngestMetrics, serve_metrics
from arrive.store.base import OnlineStore
from arrive.store.urls import open_store

if TYPE_CHECKING:
    from arrive.ingest.partitioned_kafka import PartitionedIngest, PartitionedSettings


@click.command("ingest")
@click.option(
    "--source",
    required=True,
    help="A data directory (replay), redis://HOST:PORT/DB?stream=S[&group=G] "
    "or kafka://HOST:PORT?topic=T[&group=G].",
)
@click.option(
    "--store",
    default="memory",
    show_default=True,
    help="memory, redis://HOST:PORT/DB or redis+cluster://HOST:PORT,...[?prefix=P]",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Engine checkpoint file: resumed from at start, saved every --checkpoint-s.",
)
@click.option(
    "--dead-letter",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("dead_letters.jsonl"),
    show_default=True,
    help="JSON-lines file for refused events (malformed, invalid, late), with reasons.",
)
@click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also archive every applied event here, as Parquet by UTC day, exactly once "
    "(written before each offset commit); `arrive retrain` reads it (docs/retraining.md).",
)
@click.option("--timezone", help="Marketplace IANA zone (default: the data directory's, or UTC).")
@click.option("--lateness-s", default=60.0, show_default=True, help="Allowed lateness.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=5000,
    show_default=True,
    help="Most events per poll (a trickle is applied at once, without waiting for a batch).",
)
@click.option("--checkpoint-s", default=5.0, show_default=True, help="Seconds between saves.")
@click.option("--speed", type=float, help="Replay at this multiple of real time (files only).")
@click.option(
    "--idle-advance/--no-idle-advance",
    default=None,
    help="When a stream is idle, move event time to now minus the lateness so windows "
    "expire (default: on for redis:// and kafka:// sources; turn off to feed past events "
    "through a stream; never for a data directory).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics on http://HOST:PORT/metrics (default: none).",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Interface of --metrics-port."
)
@click.option(
    "--partitioned",
    is_flag=True,
    help="Kafka only: run as one of N processes of the group with exact features "
    "(events re-keyed to owner partitions of TOPIC.owned; routes and checkpoints in the "
    "redis:// --store). See docs/scaling.md.",
)
@click.option("--quiet", is_flag=True, help="No live status line.")
def command(
    source: str,
    store: str,
    state: Path | None,
    dead_letter: Path,
    archive: Path | None,
    timezone: str | None,
    lateness_s: float,
    batch_size: int,
    checkpoint_s: float,
    speed: float | None,
    idle_advance: bool | None,
    metrics_port: int | None,
    metrics_host: str,
    partitioned: bool,
    quiet: bool,
) -> None:
    """Apply events to the online feature store until stopped (or a replay ends).

    Refused events go to --dead-letter with their reason and never stop the
    stream. SIGTERM or Ctrl-C finishes the batch in hand, saves, commits, exits.
    """
    replay = Path(source).is_dir()
    if partitioned and not (source.startswith("kafka://") and store.startswith("redis")):
        raise click.UsageError("--partitioned: needs a kafka:// --source and a redis:// --store")
    if partitioned and archive is not None:
        raise click.UsageError("--archive: the partitioned ingest does not archive (drop one)")
    if idle_advance and replay:
        raise click.UsageError("--idle-advance: a data directory is a replay of past events")
    settings = PipelineSettings(
        timezone=timezone or (local_timezone(Path(source)) if replay else "UTC"),
        lateness_s=lateness_s,
        batch_size=batch_size,
        state_path=state,
        checkpoint_s=checkpoint_s,
        follow_clock=not replay if idle_advance is None else idle_advance,
    )
    online, dead = open_store(store, "--store"), FileDeadLetter(dead_letter)
    if partitioned:
        metrics = (metrics_host, metrics_port)
        _run_partitioned(source, store, settings, online, dead, quiet, metrics)
        return
    events = open_source(source, speed=speed)
    pipeline = build_pipeline(events, online, dead, SystemClock(), settings)
    console = Console(stderr=True, highlight=False)
    if pipeline.resumed and not quiet:
        console.print(f"resumed from {state}")
    if archive is not None:
        attach(pipeline.runner, EventArchive(archive, timezone=settings.timezone))
    _stop_on_signals(pipeline.runner)
    server = None
    try:
        server = _serve_metrics(pipeline.runner, pipeline.engine, metrics_host, metrics_port)
        stats = _run(pipeline.runner, console, quiet)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        pipeline.close()
    ending = " (stopped)" if pipeline.runner.stopping else " (done)"
    console.print(_line(stats, pipeline.engine) + ending)


def _run_partitioned(
    source: str,
    store: str,
    pipeline: PipelineSettings,
    online: OnlineStore,
    dead: FileDeadLetter,
    quiet: bool,
    metrics: tuple[str, int | None],
) -> None:

    from arrive.ingest.partitioned_kafka import PartitionedIngest

    settings = partitioned_settings(source, store, pipeline)
    ingest = PartitionedIngest(settings, online, dead, SystemClock())
    _stop_on_signals(ingest)
    console = Console(stderr=True, highlight=False)
    server = None
    try:
        server = _serve_metrics(ingest.runner, ingest.owners, *metrics)
        with console.status("", spinner="dots") as status:
            while not ingest.stopping:
                ingest.run_once()
                if not quiet:
                    status.update(_partitioned_line(ingest))
            ingest.run()  # saves the owners' checkpoints
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        ingest.close()
    console.print(_partitioned_line(ingest) + " (stopped)")


def partitioned_settings(
    source: str, store: str, pipeline: PipelineSettings
) -> PartitionedSettings:
    """The partitioned-ingest settings of the command line's source, store and pipeline."""
    from arrive.ingest.partitioned_kafka import PartitionedSettings

    bootstrap, topic, group, config = kafka_parts(source)
    return PartitionedSettings(
        bootstrap=bootstrap,
        topic=topic,
        group=group,
        redis_url=store.split("?", 1)[0],
        timezone=pipeline.timezone,
        lateness_s=pipeline.lateness_s,
        batch_size=pipeline.batch_size,
        checkpoint_s=pipeline.checkpoint_s,
        follow_clock=pipeline.follow_clock,
        kafka_config=config,
    )


def _partitioned_line(ingest: PartitionedIngest) -> str:
    stats = ingest.runner.stats()
    owned = sorted(ingest.owners.engines)
    return (
        f"{stats.events_applied:,} events routed, {stats.dead_lettered:,} dead-lettered; "
        f"{ingest.owners.applied:,} applied by owners of partitions {owned}"
    )


def _serve_metrics(
    runner: IngestRunner, engine: Counted, host: str, port: int | None
) -> WSGIServer | None:
    if port is None:
        return None
    try:
        server, _ = serve_metrics(IngestMetrics(runner, engine, runner.clock), port, host)
    except OSError as exc:
        raise click.UsageError(f"--metrics-port: cannot listen on {host}:{port} ({exc})") from exc
    return server


def _run(runner: IngestRunner, console: Console, quiet: bool) -> IngestStats:
    shown = time.monotonic()
    with console.status("", spinner="dots") as status:

        def show() -> None:
            nonlocal shown
            if not quiet and time.monotonic() - shown >= 0.5:
                shown = time.monotonic()
                status.update(_line(runner.stats(), None))

        return runner.run(after_poll=show)


def _line(stats: IngestStats, engine: OnlineEngine | None) -> str:
    lag = "-" if stats.lag_s is None else f"{stats.lag_s:,.1f} s"
    line = (
        f"{stats.events_applied:,} events applied, {stats.applied_per_s:,.0f}/s, "
        f"{stats.dead_lettered:,} dead-lettered, lag {lag}"
    )
    if engine is not None:
        counts = engine.counts
        line += f", {counts.late:,} late, {counts.unmatched:,} unmatched"
    return line


def _stop_on_signals(runner: IngestRunner | PartitionedIngest) -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
