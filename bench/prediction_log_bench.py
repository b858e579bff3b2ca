"""Prediction log: the cost of a flush and of publishing a file, against a bare writer.

Usage: python bench/prediction_log_bench.py [--records 200] [--flushes 300] [--files 10]
                                            [--runs 5] [--dir DIR] [--before OLD.py]

* ``flush``: :meth:`PredictionLog.write` of one flush's batches (``--records`` records,
  built by ``extend`` from requests of 10 orders with 20 features each) into the file
  in progress, against the baseline in the same run: the same batches written as one
  row group by a bare ``pq.ParquetWriter`` (same options) on a native file. With
  ``--before OLD.py`` (an earlier ``prediction_log.py``, e.g. ``git show
  REV:src/arrive/monitoring/prediction_log.py > OLD.py``) that version's log is a third
  arm. The arms take turns going first, so all see the same machine.
* ``publish``: completing a file of ``--flushes`` flushes: the log's publish (footer,
  fsync, read-back of the footer, rename, directory fsync; triggered by a write after
  the rotation time) against a bare close and rename of the same file content (and
  the earlier version's publish).

Both run in the writer's thread, off the event loop; ``extend`` (the request path)
is not measured here. Prints JSON: per operation, the median over runs of each run's
median (and p90), the ratio to the baseline, every run, the date and the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from arrive.clock import ManualClock
from arrive.monitoring.prediction_log import _WRITER, SCHEMA, PredictionLog, Predictions

START = datetime(2026, 12, 2, 12, tzinfo=UTC)


def _request(first: int, at: datetime) -> Predictions:
    ids = range(first, first + 10)
    features = [{f"f{j}": float(i * j % 97) for j in range(20)} for i in ids]
    return Predictions(
        [f"req-{i:012d}" for i in ids],
        [f"order-{i:012d}" for i in ids],
        at,
        ["production"] * 10,
        ["7"] * 10,
        features,
        [600.0 + i % 300 for i in ids],
        [900.0 + i % 300 for i in ids],
        [None] * 10,
    )


def _flushes(count: int, records: int, directory: Path) -> list[list[pa.RecordBatch]]:
    """``count`` flushes' worth of batches, built the way the service builds them."""
    source = PredictionLog(directory / "source", ManualClock(START))
    flushes = []
    for n in range(count):
        for first in range(n * records, (n + 1) * records, 10):
            source.extend(_request(first, START))
        flushes.append(source.take())
    return flushes


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


class _Bare:
    """The baseline: one ParquetWriter on a native file, closed and renamed to publish."""

    def __init__(self, directory: Path, number: int) -> None:
        self.tmp = directory / f".{number}.tmp"
        self.final = directory / f"{number}.parquet"
        self.sink = pa.OSFile(str(self.tmp), "wb")
        self.writer = pq.ParquetWriter(self.sink, SCHEMA, **_WRITER)

    def write(self, batches: list[pa.RecordBatch]) -> None:
        self.writer.write_table(pa.Table.from_batches(batches, SCHEMA))

    def publish(self) -> None:
        self.writer.close()
        self.sink.close()
        os.replace(self.tmp, self.final)


def _logs(directory: Path, clock: ManualClock, before: Any) -> dict[str, Any]:
    """The logs under test: this version, and the ``before`` module's if given."""
    kinds = {"": PredictionLog} | ({"_before": before.PredictionLog} if before else {})
    return {
        suffix: kind(directory / f"log{suffix}", clock, rotate_s=60.0, retention_days=365.0)
        for suffix, kind in kinds.items()
    }


def _run(
    flushes: list[list[pa.RecordBatch]], files: int, directory: Path, before: Any
) -> dict[str, Any]:
    clock = ManualClock(START)
    logs = _logs(directory, clock, before)
    (directory / "bare").mkdir()
    times: dict[str, list[float]] = {}
    for number in range(files):
        bare = _Bare(directory / "bare", number)
        for n, batches in enumerate(flushes):
            arms = [
                (f"flush{s}", lambda b=batches, log=log: log.write(b)) for s, log in logs.items()
            ]
            arms.append(("flush_bare", lambda b=batches, w=bare: w.write(b)))
            for name, call in arms[n % len(arms) :] + arms[: n % len(arms)]:  # take turns first
                times.setdefault(name, []).append(_timed(call))
        clock.advance(60.0)
        for suffix, log in logs.items():  # a write after the rotation time publishes
            times.setdefault(f"publish{suffix}", []).append(_timed(lambda log=log: log.write([])))
        times.setdefault("publish_bare", []).append(_timed(bare.publish))
    total = files * sum(b.num_rows for f in flushes for b in f)
    assert all(log.written == total for log in logs.values())
    return {name: _summary(values) for name, values in times.items()}


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_us": round(statistics.median(ordered) * 1e6, 1),
        "p90_us": round(ordered[int(0.9 * (len(ordered) - 1))] * 1e6, 1),
    }


def _load(path: Path) -> Any:
    """Import ``path`` as a module of its own (an earlier version of the log)."""
    spec = importlib.util.spec_from_file_location("prediction_log_before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--before: {path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=200, help="records per flush")
    parser.add_argument("--flushes", type=int, default=300, help="flushes per file")
    parser.add_argument("--files", type=int, default=10, help="files per run")
    parser.add_argument("--runs", type=int, default=5, help="runs (medians are over these)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (a temp dir)")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="an earlier prediction_log.py (e.g. from git show) to run as a third arm",
    )
    args = parser.parse_args()
    if args.before is not None and not args.before.is_file():
        parser.error(f"--before: {args.before} is not a file")
    if min(args.records, args.flushes, args.files, args.runs) < 1:
        parser.error("--records, --flushes, --files and --runs must be at least 1")
    before = _load(args.before) if args.before else None
    with tempfile.TemporaryDirectory(dir=args.dir) as temporary:
        root = Path(temporary)
        flushes = _flushes(args.flushes, args.records, root)
        runs = []
        for number in range(args.runs):
            (root / f"run{number}").mkdir()
            runs.append(_run(flushes, args.files, root / f"run{number}", before))
    result: dict[str, Any] = {}
    for name in runs[0]:
        median = statistics.median(run[name]["median_us"] for run in runs)
        base = statistics.median(run[name.split("_")[0] + "_bare"]["median_us"] for run in runs)
        result[name] = {"median_us": median, "ratio_to_bare": round(median / base, 3)}
    print(
        json.dumps(
            {
                "bench": "prediction_log",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.platform()}",
                "python": platform.python_version(),
                "pyarrow": pa.__version__,
                "args": {k: str(v) for k, v in vars(args).items()},
                "result": result,
                "runs": runs,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
