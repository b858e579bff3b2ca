"""The kill switch: while it is on, every answer is the heuristic's (reason ``kill_switch``).

An admin call reaches one worker process, yet the switch must hold for all of them:
:class:`SharedKillSwitch` keeps it in a one-byte file that every worker maps into
memory, so a flip by one is seen by the others at their next request (a memory
read, no system call). ``arrive serve`` with several workers creates that file; set
``kill_switch_file`` to keep the switch across restarts too. A single process
without a file uses :class:`KillSwitch`, a plain flag.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from arrive.errors import ConfigError


class KillSwitch:
    """The switch of one process."""

    def __init__(self) -> None:
        self._on = False

    @property
    def on(self) -> bool:
        """Whether the heuristic answers everything."""
        return self._on

    def set(self, on: bool) -> None:
        """Turn the switch on or off."""
        self._on = bool(on)

    def close(self) -> None:
        """Release what the switch holds (nothing here)."""


class SharedKillSwitch(KillSwitch):
    """The switch in the file ``path`` (created off when missing), shared by every process
    that maps it.

    Raises:
        ConfigError: the file cannot be created or mapped.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < 1:
                    os.write(fd, b"\0")
                self._map = mmap.mmap(fd, 1)
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

    def close(self) -> None:
        """Unmap the file (the switch's state stays in it)."""
        self._map.close()
