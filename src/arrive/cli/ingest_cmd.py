"""``arrive ingest``: keep online features current from an event stream."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType

import click
from rich.console import Console

from arrive.clock import SystemClock
from arrive.features.online.engine import OnlineEngine
from arrive.ingest.deadletter import FileDeadLetter
from arrive.ingest.endpoints import open_source
from arrive.ingest.feature_sink import FeatureSink
from arrive.ingest.runner import IngestRunner, IngestStats
from arrive.store.urls import open_store
from arrive.training.dataset import local_timezone


@click.command("ingest")
@click.option(
    "--source",
    required=True,
    help="A data directory (replay), redis://HOST:PORT/DB?stream=S[&group=G] "
    "or kafka://HOST:PORT?topic=T[&group=G].",
)
@click.option(
    "--store", default="memory", show_default=True, help="memory or redis://HOST:PORT/DB[?prefix=P]"
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
@click.option("--quiet", is_flag=True, help="No live status line.")
def command(
    source: str,
    store: str,
    state: Path | None,
    dead_letter: Path,
    timezone: str | None,
    lateness_s: float,
    batch_size: int,
    checkpoint_s: float,
    speed: float | None,
    idle_advance: bool | None,
    quiet: bool,
) -> None:
    """Apply events to the online feature store until stopped (or a replay ends).

    Refused events go to --dead-letter with their reason and never stop the
    stream. SIGTERM or Ctrl-C finishes the batch in hand, saves, commits, exits.
    """
    clock = SystemClock()
    replay = Path(source).is_dir()
    if idle_advance and replay:
        raise click.UsageError("--idle-advance: a data directory is a replay of past events")
    zone = timezone or (local_timezone(Path(source)) if replay else "UTC")
    engine = OnlineEngine(open_store(store, "--store"), local_timezone=zone, lateness_s=lateness_s)
    dead = FileDeadLetter(dead_letter)
    sink = FeatureSink(engine, dead, clock, state_path=state, every_s=checkpoint_s)
    resumed = sink.resume()
    events = open_source(source, speed=speed)
    runner = IngestRunner(
        events,
        sink,
        dead,
        clock,
        batch_size=batch_size,
        checkpointer=sink,
        on_idle=sink.idle if (not replay if idle_advance is None else idle_advance) else None,
    )
    console = Console(stderr=True, highlight=False)
    if resumed and not quiet:
        console.print(f"resumed from {state}")
    _stop_on_signals(runner)
    try:
        stats = _run(runner, console, quiet)
    finally:
        events.close()
        dead.close()
        engine.store.close()
    console.print(_line(stats, engine) + (" (stopped)" if runner.stopping else " (done)"))


def _run(runner: IngestRunner, console: Console, quiet: bool) -> IngestStats:
    shown = time.monotonic()
    with console.status("", spinner="dots") as status:
        while not runner.stopping:
            handled = runner.run_once()
            if not handled and runner.source.exhausted:
                break
            if not quiet and time.monotonic() - shown >= 0.5:
                shown = time.monotonic()
                status.update(_line(runner.stats(), None))
    runner.flush()
    return runner.stats()


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


def _stop_on_signals(runner: IngestRunner) -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
