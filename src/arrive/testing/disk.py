"""A disk that fills up on demand, for testing writers through their opener seam.

:class:`FullDisk` is an :data:`~arrive.monitoring.prediction_log.Opener`: the files it
opens are real files in a real directory, but writes beyond its ``free_bytes`` write
what still fits and then fail with ``ENOSPC``, as a full disk does. A test sets
``free_bytes`` at any time (0: full now; None: unlimited, the space came back)::

    disk = FullDisk()
    log = PredictionLog(directory, clock, opener=disk)
    disk.free_bytes = 0  # every write fails from now on
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


class FullDisk:
    """Opens real files whose writes share a budget of ``free_bytes`` (None: unlimited)."""

    def __init__(self, free_bytes: int | None = None) -> None:
        self.free_bytes = free_bytes
        self.opened: list[Path] = []

    def __call__(self, path: Path) -> LimitedFile:
        self.opened.append(path)
        return LimitedFile(path, self)


class LimitedFile(io.FileIO):
    """A real file opened for writing whose writes draw on a :class:`FullDisk`'s space."""

    def __init__(self, path: Path, disk: FullDisk) -> None:
        super().__init__(path, "wb")
        self.disk = disk

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data).cast("B")
        free = self.disk.free_bytes
        if free is None or view.nbytes <= free:
            written = super().write(view)
            if free is not None:
                self.disk.free_bytes = free - written
            return written
        if free:
            super().write(view[:free])
        self.disk.free_bytes = 0
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.name))
