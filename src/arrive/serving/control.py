"""The admin's control of every worker: the kill switch (while it is on, every answer is
the heuristic's, reason ``kill_switch``) and the reload generation (the count of admin
reloads, which every worker follows).

An admin call reaches one worker process, yet the switch must hold for all of them,
and a reload must reach them all: :class:`SharedControl` keeps both in a small
file that every worker maps into memory (byte 0 the switch, then the reload count),
so a flip by one is seen by the others at their next request (a memory read, no
system call) and a reload within their next check. ``arrive serve`` with several
workers creates that file; set ``kill_switch_file`` to keep the switch across
restarts too. A single process without a file uses :class:`Control`, plain fields.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from arrive.errors import ConfigError

_SIZE = 9  # the switch, then the reload count (little-endian unsigned 64 bits)
_COUNT = struct.Struct("<Q")


class Control:
    """The kill switch and reload count of one process."""

    def __init__(self) -> None:
        self._on = False
        self._reloads = 0

    @property
    def on(self) -> bool:
        """Whether the heuristic answers everything."""
        return self._on

    def set(self, on: bool) -> None:
        """Turn the switch on or off."""
        self._on = bool(on)

    @property
    def reloads(self) -> int:
        """Admin reloads so far (a holder that sees it grow reloads its model)."""
        return self._reloads

    def count_reload(self) -> int:
        """Count one admin reload; returns the new count."""
        self._reloads += 1
        return self._reloads

    def close(self) -> None:
        """Release what the switch holds (nothing here)."""


class SharedControl(Control):
    """The switch and reload count in the file ``path`` (created off when missing),
    shared by every process that maps it.

    Raises:
        ConfigError: the file cannot be created or mapped.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < _SIZE:  # new, or from a version without the count
                    os.ftruncate(fd, _SIZE)
                self._map = mmap.mmap(fd, _SIZE)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ConfigError(f"setting kill_switch_file: cannot use {path}: {exc}") from exc

    @property
    def on(self) -> bool:
        """Whether the heuristic answers everything (as any process last set it)."""
        return self._map[0] == 1

    def set(self, on: bool) -> None:
        """Turn the switch on or off for every process sharing the file."""
        self._map[0] = 1 if on else 0

    @property
    def reloads(self) -> int:
        """Admin reloads so far, by any process sharing the file."""
        count: int = _COUNT.unpack_from(self._map, 1)[0]
        return count

    def count_reload(self) -> int:
        """Count one admin reload for every process sharing the file; returns the new count.

        Two processes counting at the same moment may count once: either way every
        holder sees the count move and reloads.
        """
        count = self.reloads + 1
        _COUNT.pack_into(self._map, 1, count)
        return count

    def close(self) -> None:
        """Unmap the file (the switch's state stays in it)."""
        self._map.close()
