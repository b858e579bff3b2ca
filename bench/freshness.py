"""Freshness of online features: event emitted → its effect readable in the store.

Usage: python bench/freshness.py DATA_DIR [--rate 5000] [--seconds 30] [--runs 3]
                                 [--stores memory,redis] [--checkpoint-s 5] [--redis-url URL]

An open-loop producer process appends the first ``rate × seconds`` events of DATA_DIR's
log to a Redis stream at ``--rate`` events/s, paced by the wall clock (it never waits
for the consumer). Each event is re-timed to the moment it is scheduled for: event
time = emission time, strictly increasing, as from a live marketplace. The ingest
runner (Redis Streams source, FeatureSink with a checkpoint every ``--checkpoint-s``,
OnlineEngine, ``on_idle``: what ``arrive ingest`` runs) writes to the in-process store
or to Redis.

An event counts as readable once the engine's watermark (stored with every batch)
stands at or after its time — events are replayed in time order, so everything up
to it has been applied. Two clocks on that:

* ``write``: when the ``put_many`` carrying the watermark returned (the sink's stamp);
* ``reader``: when a separate reader — a thread polling the in-process store, or a
  process polling Redis — first saw it (every ~1 ms).

Freshness of an event = that moment − its scheduled emission time (so a producer
falling behind counts against freshness: open loop). Prints JSON: per store, the
median over runs of p50 / p99 / max, and every run.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from arrive import datadir
from arrive.clock import SystemClock
from arrive.features.online.parts import PIPELINE_KEY
from arrive.features.online.replay import replay_order
from arrive.ingest.deadletter import MemoryDeadLetter
from arrive.ingest.pipeline import PipelineSettings, build_pipeline
from arrive.ingest.redis_streams import RedisStreamProducer, RedisStreamSource
from arrive.schema.codec import encode_event
from arrive.schema.frame import frame_to_events
from arrive.store.base import EntityKey, FeatureRow, OnlineStore
from arrive.store.memory import InMemoryStore
from arrive.testing.servers.redis_server import redis_at

_LEAD_S = 2.0  # between preparing the schedule and the first emission
_POLL_S = 0.001  # reader poll interval
Timeline = list[tuple[float, float]]  # (wall time s, watermark s), as seen


def _events(directory: Path, n: int) -> list[Any]:
    log = replay_order(datadir.scan_events(directory)).head(n).collect()
    return list(frame_to_events(log))


def _schedule(events: Sequence[Any], rate: float, start: float) -> tuple[list[float], list[bytes]]:
    """Emission times (epoch s) and payloads re-timed to them."""
    times = [start + i / rate for i in range(len(events))]
    payloads = [
        encode_event(msgspec.structs.replace(e, event_time=datetime.fromtimestamp(t, UTC)))
        for e, t in zip(events, times, strict=True)
    ]
    return times, payloads


def _produce(url: str, stream: str, times: list[float], payloads: list[bytes], out: Any) -> None:
    """Append each payload at its time (open loop); sends back how late each chunk went out."""
    producer = RedisStreamProducer(url, stream)
    lags: list[float] = []
    sent = 0
    while sent < len(payloads):
        now = time.time()
        due = bisect.bisect_right(times, now, lo=sent)
        if due == sent:
            time.sleep(min(0.0005, max(times[sent] - now, 0.0)))
            continue
        due = min(due, sent + 1000)
        producer.publish_raw(payloads[sent:due])
        lags.append(time.time() - times[sent])
        sent = due
    producer.close()
    out.send(lags)


def _watch_redis(url: str, prefix: str, stop: Any, out: Any) -> None:
    """Poll the watermark in Redis until told to stop; send back what was seen when."""
    from arrive.store.redis import RedisStore, RedisStoreConfig

    store = RedisStore(RedisStoreConfig(url=url, key_prefix=prefix, socket_timeout_s=5.0))
    out.send(_watch(store, stop.is_set))
    store.close()


def _watch(store: OnlineStore, stopped: Any) -> Timeline:
    seen: Timeline = []
    last = float("-inf")
    while not stopped():
        row = store.get_many([PIPELINE_KEY])[0]
        mark = row.get("watermark") if row else None
        if mark is not None and isinstance(mark.value, float) and mark.value / 1e6 > last:
            last = mark.value / 1e6
            seen.append((time.time(), last))
        time.sleep(_POLL_S)
    return seen


class _Stamped:
    """The store, recording when each write carrying the watermark returned."""

    def __init__(self, inner: OnlineStore) -> None:
        self.inner = inner
        self.timeline: Timeline = []

    def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        return self.inner.get_many(keys)

    def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        self.inner.put_many(rows)
        for key, row in rows:
            if key == PIPELINE_KEY and isinstance(value := row["watermark"].value, float):
                self.timeline.append((time.time(), value / 1e6))
                break

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()


def _freshness(times: list[float], timeline: Timeline, every: int) -> list[float]:
    """For every ``every``-th event, when the timeline first reached it, minus its time."""
    walls = [wall for wall, _ in timeline]
    marks = [mark for _, mark in timeline]
    out = []
    for t in times[::every]:
        at = bisect.bisect_left(marks, t - 1e-7)  # watermark µs vs float seconds
        if at < len(walls):
            out.append(walls[at] - t)
    return out


def _summary(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return {"p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": ms[-1], "n": len(ms)}


def _run(
    url: str, events: Sequence[Any], rate: float, backend: str, index: int, checkpoint_s: float
) -> dict[str, Any]:
    stream, prefix = f"fresh-{backend}-{index}-{os.getpid()}", f"fresh{backend}{index}"
    if backend == "redis":
        from arrive.store.redis import RedisStore, RedisStoreConfig

        inner: OnlineStore = RedisStore(
            RedisStoreConfig(url=url, key_prefix=prefix, socket_timeout_s=5.0)
        )
    else:
        inner = InMemoryStore()
    store = _Stamped(inner)
    source = RedisStreamSource(url, stream, group="fresh")
    with tempfile.TemporaryDirectory() as tmp:
        settings = PipelineSettings(
            batch_size=1000,
            state_path=Path(tmp) / "state" if checkpoint_s > 0 else None,
            checkpoint_s=checkpoint_s,
            follow_clock=True,
        )
        pipeline = build_pipeline(source, store, MemoryDeadLetter(), SystemClock(), settings)
        runner = pipeline.runner
        times, payloads = _schedule(events, rate, time.time() + _LEAD_S)
        ctx = multiprocessing.get_context("spawn")
        lags_in, lags_out = ctx.Pipe(duplex=False)
        producer = ctx.Process(target=_produce, args=(url, stream, times, payloads, lags_out))
        with _reader(ctx, backend, url, prefix, inner) as reader:
            producer.start()
            while runner.stats().events_applied < len(payloads):
                runner.run_once()
            runner.flush()
            producer_lags = lags_in.recv()
            producer.join()
        seen = reader()
    pipeline.close()
    stats = runner.stats()
    every = max(1, len(times) // 20_000)
    return {
        "reader": _summary(_freshness(times, seen, every)),
        "write": _summary(_freshness(times, store.timeline, every)),
        "producer_behind_ms": _summary(producer_lags),
        "batches": stats.batches,
        "mean_batch": round(stats.events_applied / max(stats.batches, 1), 1),
        "late": pipeline.engine.counts.late,
        "dead_lettered": stats.dead_lettered,
    }


@contextlib.contextmanager
def _reader(ctx: Any, backend: str, url: str, prefix: str, store: OnlineStore) -> Iterator[Any]:
    """Starts the watermark reader; yields a function that stops it and returns what it saw."""
    if backend == "redis":
        stop = ctx.Event()
        seen_in, seen_out = ctx.Pipe(duplex=False)
        process = ctx.Process(target=_watch_redis, args=(url, prefix, stop, seen_out))
        process.start()

        def finish() -> Timeline:
            stop.set()
            seen: Timeline = seen_in.recv()
            process.join()
            return seen

        yield finish
        return
    done = threading.Event()
    result: list[Timeline] = []
    thread = threading.Thread(target=lambda: result.append(_watch(store, done.is_set)))
    thread.start()

    def finish_thread() -> Timeline:
        done.set()
        thread.join()
        return result[0]

    yield finish_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stores", default="memory,redis")
    parser.add_argument("--checkpoint-s", type=float, default=5.0, help="0: no checkpoints")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    events = _events(args.data_dir, int(args.rate * args.seconds))
    results: dict[str, list[dict[str, Any]]] = {}
    with redis_at(args.redis_url) as url:
        for backend in args.stores.split(","):
            results[backend] = [
                _run(url, events, args.rate, backend, i, args.checkpoint_s)
                for i in range(args.runs)
            ]
    medians = {
        backend: {
            clock: {
                key: round(statistics.median(run[clock][key] for run in runs), 1)
                for key in ("p50_ms", "p99_ms", "max_ms")
            }
            for clock in ("reader", "write", "producer_behind_ms")
        }
        for backend, runs in results.items()
    }
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "rate": args.rate,
                "checkpoint_s": args.checkpoint_s,
                "events": len(events),
                "median_over_runs": medians,
                "runs": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
