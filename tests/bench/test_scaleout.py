"""bench/scaleout_bench.py and bench/redis_memory.py: the CPU of a process tree is summed
over its descendants, and bytes per key are read per entity kind from a real redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import ModuleType

import pytest

BURN = """
import subprocess, sys, time
if sys.argv[1] == "parent":
    child = subprocess.Popen([sys.executable, "-c", sys.argv[2], "child", ""])
    print(child.pid, flush=True)
end = time.process_time() + 0.15
while time.process_time() < end:
    pass
print("burnt", flush=True)
sys.stdin.readline() if sys.argv[1] == "parent" else time.sleep(60)
"""


@pytest.fixture(scope="module")
def cpu_time(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("cpu_time")


@pytest.fixture(scope="module")
def redis_memory(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("redis_memory")


@pytest.fixture
def burning_tree() -> Iterator[subprocess.Popen[str]]:
    """A process that spawned a child; each burnt 0.15 s of CPU, then waits."""
    with subprocess.Popen(
        [sys.executable, "-c", BURN, "parent", BURN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        try:
            assert proc.stdout.readline() == "burnt\n"
            assert proc.stdout.readline() == "burnt\n"  # the child's (it shares stdout)
            yield proc
        finally:
            os.kill(child, signal.SIGKILL)
            proc.kill()


def test_the_cpu_of_a_process_counts_its_descendants(
    cpu_time: ModuleType, burning_tree: subprocess.Popen[str]
) -> None:
    assert cpu_time.cpu_s(burning_tree.pid) >= 0.28  # 2 x 0.15 s, in clock ticks


@pytest.mark.redis
def test_bytes_per_key_are_grouped_by_entity_kind(redis_url: str, redis_memory: ModuleType) -> None:
    import redis

    from arrive.store.base import FeatureValue
    from arrive.store.keys import KeyLayout
    from arrive.store.urls import open_store

    prefix = "scaleout-test"
    store = open_store(f"{redis_url}?prefix={prefix}", "redis")
    value = FeatureValue.at(3.0, datetime.now(UTC))
    try:
        store.put_many(
            [(("store", f"s{i}"), {"load": value, "prep": value}) for i in range(3)]
            + [(("courier", "c1"), {"deliveries": value})]
        )
    finally:
        store.close()
    kinds = redis_memory.usage(redis.Redis.from_url(redis_url), KeyLayout(prefix))
    assert sorted((kind, len(rows)) for kind, rows in kinds.items()) == [
        ("courier", 1),
        ("store", 3),
    ]
    for used, length, _ in kinds["store"]:
        assert used > length > 0  # the row, plus the key and the server's overhead
