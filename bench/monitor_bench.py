"""The monitor: catching up on a million predictions, and one incremental window.

Usage: python bench/monitor_bench.py [--predictions 1000000] [--days 7] [--runs 3]
                                     [--windows 20] [--dir DIR] [--no-drift]

Runs on one core: the process is pinned to CPU 0 and Polars to one thread before it
is imported.

* Data: ``--predictions`` answers spread evenly over ``--days`` days, written as
  prediction-log files of one hour each (the service's schema and writer options,
  a store-history feature per answer, one answer in ten from the heuristic); each
  order has an ``order_created`` event and, for 95 % of them, a delivery 5 to 60
  minutes later (the rest are cancelled), as canonical JSON messages built before the
  timed region (:class:`_Prepared`: a poll costs a list slice, so the figure is the
  monitor's, not a test double's; ``memory_source_poll_cpu_s`` times the in-process
  :class:`MemorySource`, which builds each message at poll time, alone on the same
  events). Feature drift is on (``--no-drift``: off): version 7 has a reference profile
  of the served store-history count, so every served vector is parsed and binned.
* ``catch_up``: a fresh monitor (5-minute windows, 2-hour horizon) reads every log
  file and every event, joins, aggregates every window, measures drift, writes the
  quality and drift files and a checkpoint after each step, until every window is
  closed. Reported with the part spent decoding the events' JSON (``decode_s``, timed
  alone on the same payloads), which a frame-fed join would not pay.
* ``window``: then, ``--windows`` times, five more minutes of traffic arrive (one log
  file and its events) and the monitor steps until it has handled them (one or two
  steps): reads, joins, closes one window, aggregates it, writes it and the
  checkpoint. Median and p90 of that time.

Prints JSON: medians over ``--runs`` runs, every run, the date, ``uptime`` and the machine.
"""

from __future__ import annotations

import os

os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
os.environ["POLARS_MAX_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from arrive.clock import ManualClock  # noqa: E402
from arrive.ingest.source import MemorySource, MemoryStream, Position, RawMessage  # noqa: E402
from arrive.models.profile import Profile, profile_of  # noqa: E402
from arrive.monitoring import outcome_events  # noqa: E402
from arrive.monitoring.join import JoinSettings  # noqa: E402
from arrive.monitoring.monitor import Monitor, MonitorSettings  # noqa: E402
from arrive.monitoring.monitor_drift import WindowDrift  # noqa: E402
from arrive.monitoring.prediction_log import SCHEMA  # noqa: E402
from arrive.schema.codec import encode_event  # noqa: E402
from arrive.schema.events import Cancelled, Delivered, Event, OrderCreated  # noqa: E402

T0 = datetime(2025, 3, 3, tzinfo=UTC)
_WRITER = {"compression": "zstd", "use_dictionary": ["variant", "model_version", "fallback"]}


class _Traffic:
    """Orders numbered from 0 at a steady rate, with their answers and outcomes."""

    def __init__(self, per_s: float, seed: int = 1) -> None:
        self.per_s = per_s
        self.rng = np.random.default_rng(seed)
        self.next = 0

    def until(self, end_s: float) -> tuple[pa.Table, list[Event]]:
        first, last = self.next, int(end_s * self.per_s)
        self.next = last
        ids = np.arange(first, last)
        at_s = ids / self.per_s
        n = len(ids)
        p50 = self.rng.uniform(900, 2400, n)
        heuristic = self.rng.random(n) < 0.1
        history = self.rng.integers(0, 300, n)
        times = [T0 + timedelta(seconds=float(s)) for s in at_s]
        table = pa.table(
            {
                "request_id": [f"r{i}" for i in ids],
                "order_id": [f"o{i}" for i in ids],
                "time": pa.array(times, pa.timestamp("us", tz="UTC")),
                "variant": np.where(heuristic, "heuristic", "production").tolist(),
                "model_version": [None if h else "7" for h in heuristic],
                "features": [f'{{"store_delivery_count_28d":{h}}}' for h in history],
                "p50_s": p50,
                "p90_s": p50 * 1.6,
                "fallback": ["deadline" if h else None for h in heuristic],
            },
            schema=SCHEMA,
        )
        return table, self._events(ids, times, p50)

    def _events(self, ids: np.ndarray, times: list[datetime], p50: np.ndarray) -> list[Event]:
        duration = p50 * self.rng.uniform(0.5, 1.8, len(ids))
        fate = self.rng.random(len(ids))
        events: list[Event] = []
        for i, when, d, f in zip(
            ids.tolist(), times, duration.tolist(), fate.tolist(), strict=True
        ):
            order = f"o{i}"
            events.append(
                OrderCreated(
                    event_id=f"c{i}",
                    event_time=when,
                    order_id=order,
                    market_id=f"m{i % 4}",
                    store_category="abc"[i % 3],
                )
            )
            outcome_at = when + timedelta(seconds=min(max(d, 300.0), 3600.0))
            if f < 0.95:
                events.append(Delivered(event_id=f"d{i}", event_time=outcome_at, order_id=order))
            else:
                events.append(
                    Cancelled(event_id=f"x{i}", event_time=outcome_at, order_id=order, reason="r")
                )
        return events


class _Prepared:
    """An event source over messages built ahead of time: a poll is a list slice."""

    def __init__(self) -> None:
        self.messages: list[RawMessage] = []
        self._next = 0

    def extend(self, payloads: list[bytes]) -> None:
        start = len(self.messages)
        self.messages += [
            RawMessage(payload, Position("outcomes", 0, start + i))
            for i, payload in enumerate(payloads)
        ]

    def poll(self, max_events: int, timeout_s: float) -> list[RawMessage]:
        batch = self.messages[self._next : self._next + max_events]
        self._next += len(batch)
        return batch

    def commit(self, positions: object) -> None:
        return

    @property
    def exhausted(self) -> bool:
        return False

    def close(self) -> None:
        return


def _profile() -> Profile:
    """The served store-history count's training profile (uniform on 0 to 299, as served)."""
    counts = pl.DataFrame({"store_delivery_count_28d": np.arange(300, dtype=float)})
    return profile_of(counts, {"store_delivery_count_28d": "numeric"})


def _write_log(directory: Path, table: pa.Table, start_s: float) -> None:
    stamp = (T0 + timedelta(seconds=start_s)).strftime("%Y%m%dT%H%M%SZ")
    pq.write_table(table, directory / f"predictions-{stamp}-pid1-0.parquet", **_WRITER)


def _append(stream: MemoryStream, events: list[Event]) -> list[bytes]:
    payloads = [encode_event(e) for e in sorted(events, key=lambda e: (e.event_time, e.event_id))]
    for payload in payloads:
        stream.append(payload)
    return payloads


def one_run(
    root: Path, predictions: int, days: float, windows: int, *, drift: bool = True
) -> dict[str, Any]:
    shutil.rmtree(root, ignore_errors=True)
    (root / "log").mkdir(parents=True)
    span_s = days * 86400
    traffic = _Traffic(predictions / span_s)
    stream = MemoryStream("outcomes")
    payloads: list[bytes] = []
    for hour in range(int(span_s // 3600)):
        table, events = traffic.until((hour + 1) * 3600)
        _write_log(root / "log", table, hour * 3600)
        payloads += _append(stream, events)
    settings = MonitorSettings(
        log_dir=root / "log",
        out_dir=root / "quality",
        checkpoint=root / "checkpoint.msgpack",
        join=JoinSettings(horizon_s=7200.0, window_s=300.0),
        batch_size=100_000,
        files_per_step=8,
    )
    source = _Prepared()
    source.extend(payloads)
    window_drift = WindowDrift({"7": _profile()}.get, settings.join.window_s) if drift else None
    monitor = Monitor(settings, source, ManualClock(T0), drift=window_drift)
    started, cpu = time.perf_counter(), time.process_time()
    steps = 0
    while monitor.step() or monitor.backlog():
        steps += 1
    catch_up_s = time.perf_counter() - started
    catch_up_cpu_s = time.process_time() - cpu
    cpu = time.process_time()
    outcome_events.decode(payloads)
    decode_cpu_s = time.process_time() - cpu
    replay = MemorySource(MemoryStream("again", list(stream.entries)))
    cpu = time.process_time()
    while replay.poll(settings.batch_size, 0.0):
        pass
    source_cpu_s = time.process_time() - cpu
    joined = sum(v for k, v in monitor.counts.items() if k.startswith("joined:"))
    drift_rows = sum(pl.read_parquet(p).height for p in (root / "quality").glob("drift-*"))

    step_ms, step_cpu_ms = [], []
    for window in range(windows):
        end_s = span_s + (window + 1) * 300
        table, events = traffic.until(end_s)
        _write_log(root / "log", table, end_s - 300)
        source.extend(_append(stream, events))
        closed_before = monitor.join.state.closed_until
        started, cpu = time.perf_counter(), time.process_time()
        while monitor.step():  # the log file and the events (one or two steps)
            pass
        step_ms.append((time.perf_counter() - started) * 1e3)
        step_cpu_ms.append((time.process_time() - cpu) * 1e3)
        if monitor.join.state.closed_until == closed_before:
            raise RuntimeError("an incremental step closed no window")
    return {
        "predictions": predictions,
        "events": len(payloads),
        "joined": joined,
        "catch_up_s": catch_up_s,
        "catch_up_cpu_s": catch_up_cpu_s,
        "catch_up_steps": steps,
        "decode_cpu_s": decode_cpu_s,
        "memory_source_poll_cpu_s": source_cpu_s,
        "drift_rows": drift_rows,
        "window_predictions": int(300 * traffic.per_s),
        "window_step_ms_median": statistics.median(step_ms),
        "window_step_ms_p90": float(np.percentile(step_ms, 90)),
        "window_step_cpu_ms_median": statistics.median(step_cpu_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--no-drift", action="store_true", help="Feature drift off.")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    runs = [
        one_run(
            base / f"run{i}", args.predictions, args.days, args.windows, drift=not args.no_drift
        )
        for i in range(args.runs)
    ]
    keys = (
        "catch_up_s",
        "catch_up_cpu_s",
        "decode_cpu_s",
        "memory_source_poll_cpu_s",
        "window_step_ms_median",
        "window_step_ms_p90",
        "window_step_cpu_ms_median",
    )
    print(
        json.dumps(
            {
                "medians": {k: statistics.median(r[k] for r in runs) for k in keys},
                "runs": runs,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "uptime": subprocess.run(
                    ["uptime"], check=False, capture_output=True, text=True
                ).stdout.strip(),
                "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
                f"CPython {platform.python_version()}",
                "cores_used": sorted(os.sched_getaffinity(0)),
            },
            indent=2,
        )
    )
    if args.dir is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
