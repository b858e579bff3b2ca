"""LocalRegistry: the embedded default, a directory on a local filesystem.

::

    ROOT/index.json             versions, checksums, metadata, aliases, alias history
    ROOT/.lock                  taken (fcntl.flock) by every change
    ROOT/versions/<n>/<file>    the artifacts of version n, as registered

Every change takes an exclusive lock on ``ROOT/.lock``, reads the index, writes
artifacts into a hidden staging folder moved into place with one rename, and
replaces ``index.json`` atomically (temporary file, fsync, ``os.replace``). Readers
take no lock: they always see a whole index. Nothing is ever pickled.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Set
from pathlib import Path
from typing import Final

from arrive.clock import Clock
from arrive.errors import ConfigError, ModelIntegrityError
from arrive.registry import index as idx
from arrive.registry.stored import StoredRegistry

#: Where ``arrive`` keeps its registry unless told otherwise (relative to the working directory).
DEFAULT_ROOT: Final = Path(".arrive/registry")
INDEX_FILE: Final = "index.json"
LOCK_FILE: Final = ".lock"
VERSIONS_DIR: Final = "versions"


class LocalRegistry(StoredRegistry):
    """A registry in a directory. Safe across threads and processes on one machine
    (not on network filesystems whose ``flock`` is advisory-only or absent).

    Args:
        root: the registry directory, created on the first change; a relative path is
            taken from the working directory at construction.
        clock: source of registration and alias-change times (default: system clock).

    Raises:
        ConfigError: ``root`` exists and is not a directory.
    """

    def __init__(self, root: Path | str = DEFAULT_ROOT, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.root = Path(root).absolute()
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"registry {self.root}: exists and is not a directory")

    def __repr__(self) -> str:
        return f"LocalRegistry({str(self.root)!r})"

    @property
    def _index_path(self) -> Path:
        return self.root / INDEX_FILE

    @property
    def _versions(self) -> Path:
        return self.root / VERSIONS_DIR

    def _snapshot(self) -> idx.RegistryIndex:
        try:
            data = self._index_path.read_bytes()
        except FileNotFoundError:
            return idx.RegistryIndex()
        return idx.decode(data, source=str(self._index_path))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[idx.RegistryIndex]:
        self._versions.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                index = self._snapshot()
                yield index
                write_atomically(self._index_path, idx.encode(index))
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _store(self, version: str, contents: Mapping[str, bytes]) -> None:
        stage = self._versions / f".{version}.partial-{secrets.token_hex(6)}"
        stage.mkdir()  # not tempfile.mkdtemp: its 0700 would hide artifacts from other users
        try:
            for name, data in contents.items():
                _write_synced(stage / name, data)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        self._discard(version)  # leftovers of an interrupted earlier attempt
        os.replace(stage, self._versions / version)

    def _load(self, version: str, name: str) -> bytes:
        path = self._versions / version / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ModelIntegrityError(f"{path}: artifact missing") from None

    def _discard(self, version: str) -> None:
        shutil.rmtree(self._versions / version, ignore_errors=True)

    def _sweep(self, known: Set[str]) -> None:
        # Runs under the lock, so a staging folder seen here belongs to a dead writer.
        for child in self._versions.iterdir():
            if child.name not in known:
                shutil.rmtree(child, ignore_errors=True)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, whole."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        _write_synced(temporary, data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
