"""The registry's behaviour, written once over a storage backend's few primitives.

A backend subclasses :class:`StoredRegistry` and says how to keep the index
(:meth:`~StoredRegistry._snapshot`, :meth:`~StoredRegistry._transaction`) and the
files' bytes (``_store``, ``_load``, ``_discard``, ``_sweep``); every rule lives
here and in :mod:`arrive.registry.index`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any

from arrive.clock import Clock, SystemClock
from arrive.errors import (
    ConfigError,
    InputFileError,
    ModelIntegrityError,
    ModelNotFound,
    RegistryConflict,
)
from arrive.registry import index as idx
from arrive.registry.base import AliasChange, ArtifactFile, LoadedModel, ModelVersion
from arrive.registry.retention import versions_to_delete

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


class StoredRegistry(ABC):
    """A :class:`~arrive.registry.base.ModelRegistry` over abstract storage.

    Subclasses must make ``_transaction`` exclusive (no two run at once, across
    every handle on the same storage) and ``_snapshot`` consistent (it never
    sees a half-written index).
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()

    # -- storage primitives -------------------------------------------------------

    @abstractmethod
    def _snapshot(self) -> idx.RegistryIndex:
        """A private copy of the current index (an empty one if nothing is stored)."""

    @abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[idx.RegistryIndex]:
        """Exclusive access to a copy of the index, stored back if the block succeeds."""

    @abstractmethod
    def _store(self, version: str, contents: Mapping[str, bytes]) -> None:
        """Write a version's files (called inside a transaction; replaces leftovers)."""

    @abstractmethod
    def _load(self, version: str, name: str) -> bytes:
        """A stored file's bytes. Raises ModelIntegrityError if it is missing."""

    @abstractmethod
    def _discard(self, version: str) -> None:
        """Remove a version's files (no error if they are already gone)."""

    @abstractmethod
    def _sweep(self, known: Set[str]) -> None:
        """Remove stored files of versions not in ``known`` (left by interrupted writes)."""

    # -- the public contract ------------------------------------------------------

    def register(
        self, files: Mapping[str, bytes | Path], metadata: Mapping[str, Any]
    ) -> ModelVersion:
        contents = _read_files(files)
        record = _copy_metadata(metadata)
        checksums = {name: _checksum(data) for name, data in contents.items()}
        with self._transaction() as index:
            version = idx.next_version(index)
            self._store(version, contents)
            added = idx.add_version(
                index, checksums, record, version=version, now=self._clock.now()
            )
        logger.info("registered model version %s (%d files)", version, len(contents))
        return added

    def get(self, ref: str) -> ModelVersion:
        index = self._snapshot()
        return idx.view(index, idx.resolve(index, ref))

    def versions(self) -> list[ModelVersion]:
        index = self._snapshot()
        return [idx.view(index, v) for v in idx.ordered(index)]

    def open(self, ref: str) -> LoadedModel:
        record = self.get(ref)
        files = {name: self._verified(record, name) for name in record.files}
        return LoadedModel(version=record, files=files)

    def read_file(self, ref: str, name: str) -> bytes:
        record = self.get(ref)
        if name not in record.files:
            listed = ", ".join(sorted(record.files))
            raise ModelNotFound(f"version {record.version} has no file {name!r} ({listed})")
        return self._verified(record, name)

    def set_alias(self, alias: str, ref: str | None, *, reason: str) -> AliasChange:
        idx.check_alias(alias)
        with self._transaction() as index:
            version = None if ref is None else idx.resolve(index, ref)
            change = idx.change_alias(index, alias, version, reason=reason, now=self._clock.now())
        logger.info("alias %s: %s -> %s (%s)", alias, change.previous, version, reason)
        return change

    def alias_history(self, alias: str) -> list[AliasChange]:
        idx.check_alias(alias)
        return [c for c in self._snapshot().history if c.alias == alias]

    def rollback(self, alias: str, *, reason: str = "rollback") -> AliasChange:
        idx.check_alias(alias)
        with self._transaction() as index:
            target = idx.rollback_target(index, alias)
            if target is not None and target not in index.versions:
                raise RegistryConflict(
                    f"alias {alias!r} cannot roll back: version {target} was deleted"
                )
            change = idx.change_alias(
                index, alias, target, reason=reason, now=self._clock.now(), kind="rollback"
            )
        logger.info("alias %s rolled back: %s -> %s", alias, change.previous, target)
        return change

    def delete(self, version: str) -> None:
        with self._transaction() as index:
            idx.remove(index, version)
        self._discard(version)
        logger.info("deleted model version %s", version)

    def gc(self, keep_last: int, *, dry_run: bool = False) -> list[str]:
        if dry_run:
            return _doomed(self._snapshot(), keep_last)
        with self._transaction() as index:
            doomed = _doomed(index, keep_last)
            for version in doomed:
                idx.remove(index, version)
        # Files go only once the index no longer names them: a crash leaves orphans, never
        # an index pointing at nothing. The sweep also clears orphans of earlier crashes.
        with self._transaction() as index:
            self._sweep(set(index.versions))
        logger.info("gc deleted %d model versions: %s", len(doomed), doomed)
        return doomed

    def _verified(self, record: ModelVersion, name: str) -> bytes:
        data = self._load(record.version, name)
        expected = record.files[name]
        if len(data) != expected.size_bytes or _sha256(data) != expected.sha256:
            raise ModelIntegrityError(
                f"version {record.version}, file {name!r}: contents do not match the "
                "checksum recorded at registration (the artifact was corrupted or edited)"
            )
        return data


def _doomed(index: idx.RegistryIndex, keep_last: int) -> list[str]:
    return versions_to_delete(list(index.versions), idx.protected(index), keep_last=keep_last)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checksum(data: bytes) -> ArtifactFile:
    return ArtifactFile(sha256=_sha256(data), size_bytes=len(data))


def _read_files(files: Mapping[str, bytes | Path]) -> dict[str, bytes]:
    """Validate file names and read path inputs, in name order."""
    if not files:
        raise ConfigError("files: a model version needs at least one file")
    contents = {name: _read_one(name, source) for name, source in files.items()}
    return dict(sorted(contents.items()))


def _read_one(name: str, source: bytes | Path) -> bytes:
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        raise ConfigError(
            f"files: {name!r} is not a plain file name (letters, digits, '._-', "
            "not starting with '.' or '-', at most 255 characters)"
        )
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise InputFileError(f"files[{name!r}]: cannot read {source}: {exc.strerror}") from exc


def _copy_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round-trip copy (tuples become lists, keys strings): what every backend
    stores, so all read back the same and no caller can change a stored record."""
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metadata: must be JSON-serialisable without loss ({exc})") from exc
    copy: dict[str, Any] = json.loads(text)
    return copy
