"""CPU seconds of a process tree, from ``/proc`` (Linux): what a benchmark's service used."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arrive.testing.servers.eta_service import ServeProcess

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def with_cpu(service: ServeProcess, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``, and ``cores``: the service's CPU seconds per second of it."""
    if service.proc is None:
        raise RuntimeError("the service is not running")
    pid = service.proc.pid
    cpu, start = cpu_s(pid), time.monotonic()
    result = run()
    result["cores"] = (cpu_s(pid) - cpu) / (time.monotonic() - start)
    return result


def cpu_s(root: int) -> float:
    """User + system CPU seconds of process ``root`` and its descendants (``/proc``)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) * _TICK_S)
    tree, total = {root}, 0.0
    for _ in range(3):  # supervisor -> workers (-> their helpers)
        tree |= {pid for pid, (parent, _) in stats.items() if parent in tree}
    for pid in tree:
        total += stats.get(pid, (0, 0.0))[1]
    return total
