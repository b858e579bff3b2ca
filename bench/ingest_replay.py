"""Decode + dispatch throughput of one ingest process: file replay into a no-op apply.

Usage: python bench/ingest_replay.py DATA_DIR [--batch-size 500] [--runs 3]

DATA_DIR is any data directory (e.g. from `arrive simulate --out DATA_DIR`). Each run
replays the whole event log as fast as possible through IngestRunner (row → JSON in
the source, JSON → validated event in the runner, commit per batch); the no-op apply
isolates Arrive's own cost. Loading the log (Parquet read + sort) is timed apart.
``runner_only_events_per_s`` is the runner alone (JSON decode + validation + dispatch +
commit) over the same payloads held in memory, as a Kafka or Redis consumer sees them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from arrive.clock import SystemClock
from arrive.ingest.deadletter import MemoryDeadLetter
from arrive.ingest.files import FileReplaySource
from arrive.ingest.runner import IngestRunner
from arrive.ingest.source import MemorySource, MemoryStream
from arrive.schema.events import AnyEvent


def _noop(events: Sequence[AnyEvent]) -> None:
    return None


def _run(directory: Path, batch_size: int) -> dict[str, float]:
    started = time.perf_counter()
    source = FileReplaySource(directory)
    loaded = time.perf_counter()
    runner = IngestRunner(source, _noop, MemoryDeadLetter(), SystemClock(), batch_size=batch_size)
    stats = runner.run()
    done = time.perf_counter()
    return {
        "events": stats.events_applied,
        "dead_lettered": stats.dead_lettered,
        "load_s": round(loaded - started, 3),
        "replay_s": round(done - loaded, 3),
        "events_per_s": round(stats.events_applied / (done - loaded)),
    }


def _run_runner_only(directory: Path, batch_size: int) -> float:
    stream = MemoryStream()
    for message in FileReplaySource(directory).poll(10**9, 0.0):
        stream.append(message.payload)
    source = MemorySource(stream, finite=True)
    runner = IngestRunner(source, _noop, MemoryDeadLetter(), SystemClock(), batch_size=batch_size)
    started = time.perf_counter()
    stats = runner.run()
    return round(stats.events_applied / (time.perf_counter() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [_run(args.data_dir, args.batch_size) for _ in range(args.runs)]
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "median_events_per_s": statistics.median(r["events_per_s"] for r in runs),
        "runs": runs,
        "runner_only_events_per_s": _run_runner_only(args.data_dir, args.batch_size),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
