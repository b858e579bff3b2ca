"""How many threads an Arrive process uses, and how its OpenMP threads wait.

The thread count is what the process may really run on, not the machine's size:
the CPUs of its affinity mask (``taskset``, ``cpuset``), capped by its cgroup's CPU
quota (cgroup v2 ``cpu.max``, cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``)
rounded up. ``ARRIVE_THREADS`` (or ``arrive --threads N``) overrides it. Every place
that sizes threads asks :func:`threads`: LightGBM training and prediction, the
compilers of the serving trees, Polars, the local Dask cluster and the benchmarks.

:func:`prepare_environment` runs when the ``arrive`` package is first imported,
before any module of it loads LightGBM or Polars, so it also holds in child
processes (the compile child, Dask workers, server workers) which import Arrive or
inherit the environment. Unless the user set them, it sets:

* ``OMP_WAIT_POLICY=PASSIVE`` (and ``KMP_BLOCKTIME=0`` for LLVM's OpenMP): an
  OpenMP thread waiting for its team sleeps instead of spinning. Spinning threads
  burn the cores another process needs, and a team whose last thread is waiting
  for a core held by a spinner stalls: two trainings started together on two
  cores took six times as long as one alone.
* ``OMP_NUM_THREADS`` and ``POLARS_MAX_THREADS`` to :func:`threads` (Polars reads
  its variable once, when it is imported).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Final

from arrive.errors import ConfigError

THREADS_ENV: Final = "ARRIVE_THREADS"
WAIT_DEFAULTS: Final = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
THREAD_VARIABLES: Final = ("OMP_NUM_THREADS", "POLARS_MAX_THREADS")
_MAX_THREADS: Final = 1024
_ROOT: Final = Path("/")
SET_MARKER: Final = "ARRIVE_SET_VARIABLES"
"""Lists ``NAME=VALUE`` of what :func:`prepare_environment` set (children inherit it)."""


def threads(environ: Mapping[str, str] | None = None) -> int:
    """Threads to use: ``ARRIVE_THREADS`` when set, else :func:`available_cores`.

    Raises:
        ConfigError: ``ARRIVE_THREADS`` is not a whole number from 1 to 1024.
    """
    raw = (os.environ if environ is None else environ).get(THREADS_ENV, "").strip()
    if not raw:
        return _detected()
    return parse_threads(raw, THREADS_ENV)


def parse_threads(raw: str, source: str) -> int:
    """``raw`` as a thread count; ConfigError naming ``source`` when it is not one."""
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{source}: not a whole number of threads: {raw!r}") from None
    if not 1 <= value <= _MAX_THREADS:
        raise ConfigError(f"{source}: must be from 1 to {_MAX_THREADS}, got {value}")
    return value


def available_cores(root: Path = _ROOT) -> int:
    """CPUs this process may run on: its affinity mask capped by its cgroup CPU quota.

    Args:
        root: the file system root ``/proc`` and ``/sys/fs/cgroup`` are read under
            (tests pass a directory of fake files).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup_cpu_limit(root)
    if quota is not None:
        cores = min(cores or 1, math.ceil(quota))
    return max(cores or 1, 1)


@functools.cache
def _detected() -> int:
    return available_cores()


def cgroup_cpu_limit(root: Path = _ROOT) -> float | None:
    """CPUs granted by the cgroup quotas of this process and its ancestors (None: no quota)."""
    groups = _own_cgroups(root / "proc/self/cgroup")
    limits = [
        limit
        for mount_root, mount_point, version in _cpu_mounts(root)
        if (path := groups.get(version)) is not None
        for directory in _ancestors(mount_root, mount_point, path)
        if (limit := _quota(directory, version)) is not None
    ]
    return min(limits, default=None)


def _own_cgroups(path: Path) -> dict[str, str]:
    """This process's cgroup path: under key ``v2``, and under ``v1`` for the cpu controller."""
    found: dict[str, str] = {}
    for line in _read(path).splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, cgroup = parts
        if controllers == "":
            found["v2"] = cgroup
        elif "cpu" in controllers.split(","):
            found["v1"] = cgroup
    return found


def _cpu_mounts(root: Path) -> list[tuple[str, Path, str]]:
    """``(root in the hierarchy, mount point, version)`` of each cgroup mount with CPU quotas."""
    mounts = []
    for line in _read(root / "proc/self/mountinfo").splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        kind, _, options = line.split(" - ", 1)[1].split()[:3]
        if kind == "cgroup2":
            mounts.append((fields[3], root / fields[4].lstrip("/"), "v2"))
        elif kind == "cgroup" and "cpu" in options.split(","):
            mounts.append((fields[3], root / fields[4].lstrip("/"), "v1"))
    return mounts


def _ancestors(mount_root: str, mount_point: Path, cgroup: str) -> Iterator[Path]:
    """The process's cgroup directory under ``mount_point``, then each parent up to it."""
    try:
        directory = mount_point / Path(cgroup).relative_to(mount_root)
    except ValueError:  # a cgroup outside the mount's view (a container's): its root holds it
        directory = mount_point
    while True:
        yield directory
        if directory == mount_point or mount_point not in directory.parents:
            return
        directory = directory.parent


def _quota(directory: Path, version: str) -> float | None:
    if version == "v2":
        quota, _, period = _read(directory / "cpu.max").partition(" ")
    else:
        quota = _read(directory / "cpu.cfs_quota_us")
        period = _read(directory / "cpu.cfs_period_us")
    try:
        share = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):  # "max", -1, no file: no quota here
        return None
    return share if share > 0 else None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def prepare_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the OpenMP wait policy and the thread variables, leaving the user's alone.

    Call it again after changing ``ARRIVE_THREADS``: it updates the values it set
    itself (recorded in ``ARRIVE_SET_VARIABLES``), never a value the user set.
    Never raises: an invalid ``ARRIVE_THREADS`` is reported by :func:`threads`.
    """
    env = os.environ if environ is None else environ
    ours = set(filter(None, env.get(SET_MARKER, "").split(",")))
    user = {name for name in env if name != SET_MARKER and f"{name}={env[name]}" not in ours}
    wanted = {**WAIT_DEFAULTS, **dict.fromkeys(THREAD_VARIABLES, str(_threads_or_detected(env)))}
    if "OMP_WAIT_POLICY" in user:
        del wanted["KMP_BLOCKTIME"]  # the user chose how OpenMP threads wait
    kept = set()
    for name, value in wanted.items():
        if name not in user:
            env[name] = value
            kept.add(f"{name}={value}")
    env[SET_MARKER] = ",".join(sorted(kept))


def _threads_or_detected(environ: Mapping[str, str]) -> int:
    try:
        return threads(environ)
    except ConfigError:
        return _detected()


def without_ours(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the variables :func:`prepare_environment` set: a child
    process given it decides its own (benchmarks and tests compare settings so)."""
    ours = {item.partition("=")[0] for item in environ.get(SET_MARKER, "").split(",")}
    ours.add(SET_MARKER)
    return {name: value for name, value in environ.items() if name not in ours}
