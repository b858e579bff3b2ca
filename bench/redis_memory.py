"""Bytes per entity key in a real redis-server, with the real feature rows.

Usage: PYTHONPATH=src:bench python bench/redis_memory.py [--source food-delivery|simulated]

Fills its own redis-server the way ``bench/serve_bench.py`` does (the event log moved to
end now, replayed through the online engine into Redis: every key written as ingest
writes it, with its expiry), then, for every feature key (``SCAN``), asks the server
``MEMORY USAGE key SAMPLES 0`` (key, value and the server's per-key overhead) and
``STRLEN`` (the packed row). Prints, per entity kind: keys, median and mean bytes,
the packed row's mean length; and the server's ``used_memory`` growth per key (which
also counts the key space's hash table).

``--source food-delivery``: the Kaggle Food Delivery data (``--csv``); ``simulated``:
``arrive simulate`` (``--days`` x ``--orders-per-day``, one city), which has courier
location pings (so the courier-proximity cells too).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import redis

from arrive import datadir
from arrive.store.keys import KeyLayout
from arrive.testing.servers.eta_service import fill_redis
from arrive.testing.servers.redis_server import RedisServer


def main() -> None:
    import serve_bench as sb  # heavy (training): imported when run, not when tested

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("food-delivery", "simulated"), default="food-delivery")
    parser.add_argument("--csv", type=Path, default=sb.DEFAULT_CSV, help="Food Delivery CSV")
    parser.add_argument("--days", type=int, default=2, help="simulated days (%(default)s)")
    parser.add_argument("--orders-per-day", type=int, default=4000, help="simulated orders/day")
    args = parser.parse_args()
    if args.days < 1 or args.orders_per_day < 1:
        parser.error("--days and --orders-per-day must be positive")
    with tempfile.TemporaryDirectory(prefix="arrive-redis-memory-") as tmp:
        work = Path(tmp)
        live = sb._shifted(_data(args, work), work / "live")  # as serve_bench fills Redis
        with RedisServer() as server:
            client = redis.Redis.from_url(server.url)
            empty = int(client.info("memory")["used_memory"])
            print("replaying the event log into redis ...", file=sys.stderr)
            cpu = _cpu_s(client)
            fill_redis(server.url, live, timeout_s=3600.0)
            cpu = _cpu_s(client) - cpu
            kinds = usage(client)
            grown = int(client.info("memory")["used_memory"]) - empty
            total = int(client.dbsize())
        events = datadir.scan_events(live).select(pl.len()).collect().item()
    _print(args, kinds, grown, total)
    print(
        f"redis-server CPU during the replay: {cpu:.2f} s for {events:,} events "
        f"({cpu / events * 1e6:.1f} µs per event: the online engine's writes, batched as "
        "the replay batches them)"
    )


def _data(args: argparse.Namespace, work: Path) -> Path:
    if args.source == "food-delivery":
        from arrive.ingest.importers import import_into, load_mapping

        return import_into(work / "data", args.csv, load_mapping("food-delivery"))
    out = work / "data"
    command = [sys.executable, "-m", "arrive.cli", "simulate", "--out", str(out), "--quiet"]
    command += ["--days", str(args.days), "--orders-per-day", str(args.orders_per_day)]
    subprocess.run(command, check=True)
    return out


def _cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def usage(
    client: redis.Redis, layout: KeyLayout | None = None
) -> dict[str, list[tuple[int, int, int]]]:
    """(MEMORY USAGE, STRLEN, TTL) of every feature key of ``layout`` (default the
    default prefix's), by entity kind."""
    layout = layout or KeyLayout()
    head = layout.feature_key(("k", "i")).removesuffix("k:i")  # {prefix}:v{N}:f:
    kinds: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for key in client.scan_iter(match=layout.feature_pattern(), count=1000):
        kind = key.decode().removeprefix(head).split(":", 1)[0]
        pipe = client.pipeline(transaction=False)
        pipe.memory_usage(key, samples=0)
        pipe.strlen(key)
        pipe.ttl(key)
        used, length, ttl = pipe.execute()
        kinds[kind].append((int(used), int(length), int(ttl)))
    return kinds


def _print(
    args: argparse.Namespace, kinds: dict[str, list[tuple[int, int, int]]], grown: int, total: int
) -> None:
    version = "redis-server " + subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[2].removeprefix("v=")
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.source}, {version}\n")
    print(
        "| entity kind | keys | MEMORY USAGE median B | mean B | max B | packed row mean B "
        "| TTL median s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, rows in sorted(kinds.items()):
        used = [u for u, _, _ in rows]
        print(
            f"| {kind} | {len(rows):,} | {statistics.median(used):,.0f} | "
            f"{statistics.mean(used):,.0f} | {max(used):,} | "
            f"{statistics.mean(n for _, n, _ in rows):,.0f} | "
            f"{statistics.median(t for _, _, t in rows):,.0f} |"
        )
    summed = sum(u for rows in kinds.values() for u, _, _ in rows)
    print(
        f"\nsum of MEMORY USAGE {summed:,} B; used_memory grew {grown:,} B for {total:,} keys: "
        f"{grown / max(total, 1):,.0f} B/key ({(grown - summed) / max(total, 1):,.0f} B/key "
        "beyond MEMORY USAGE: the key space's tables, the replay's client buffers)"
    )


if __name__ == "__main__":
    main()
