"""The model registry contract: what a registered model is, and what every backend does.

A model version is an opaque bundle of named files (the registry never parses them)
plus a JSON-able metadata mapping. By convention the training pipeline writes
these metadata keys: ``metrics`` (``mae_s``, ``coverage_p90``, ``late_rate``, ...),
``data_range``, ``features``, ``feature_hash``, ``params``, ``code_version`` and
``created_at``; the registry stores whatever it is given.

Versions are the strings ``"1"``, ``"2"``, ... in registration order and are never
reused. An alias (``production``, ``canary``, ``shadow``) points at one version
at a time; every change is recorded so it can be audited and rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import msgspec

#: The only alias names a registry accepts.
ALIASES: Final = ("production", "canary", "shadow")

AliasChangeKind = Literal["set", "rollback"]


class ArtifactFile(msgspec.Struct, frozen=True, kw_only=True):
    """One stored file of a version: its SHA-256 (hex) and size, recorded at registration."""

    sha256: str
    size_bytes: int


class ModelVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A registered model version.

    Attributes:
        version: ``"1"``, ``"2"``, ... in registration order.
        created_at: when it was registered (UTC, from the registry's clock).
        files: file name -> checksum and size.
        metadata: the JSON-able mapping given at registration (a copy).
        aliases: the aliases pointing at this version when it was read.
    """

    version: str
    created_at: datetime
    files: dict[str, ArtifactFile]
    metadata: dict[str, Any]
    aliases: tuple[str, ...] = ()

    @property
    def metrics(self) -> dict[str, Any]:
        """``metadata["metrics"]`` when it is a mapping, else empty."""
        metrics = self.metadata.get("metrics")
        return metrics if isinstance(metrics, dict) else {}


class AliasChange(msgspec.Struct, frozen=True, kw_only=True):
    """One change of an alias: who held it before, who holds it after, when and why.

    ``version`` is ``None`` when the alias was cleared; ``previous`` is ``None`` when
    it was unset before. ``kind`` is ``"rollback"`` for :meth:`ModelRegistry.rollback`.
    """

    alias: str
    version: str | None
    previous: str | None
    changed_at: datetime
    reason: str
    kind: AliasChangeKind = "set"


class LoadedModel(msgspec.Struct, frozen=True, kw_only=True):
    """A version's record with the contents of all its files, every checksum verified."""

    version: ModelVersion
    files: dict[str, bytes]

    @property
    def metadata(self) -> dict[str, Any]:
        return self.version.metadata


class ModelRegistry(Protocol):
    """Stores model versions, their checksums, and the aliases that point at them.

    ``ref`` arguments take a version (``"3"``) or an alias name (``"production"``).

    To implement, provide at least the methods below and run the conformance suite
    :class:`arrive.testing.registry_contract.RegistryContract` against the backend,
    unchanged. Implementations must be safe to call from several threads; those that
    persist must also be safe across processes.

    Errors: :class:`~arrive.errors.ModelNotFound` for an unknown version or an unset
    alias, :class:`~arrive.errors.ConfigError` for an unknown alias name or invalid
    argument, :class:`~arrive.errors.RegistryConflict` when a rule would be broken,
    :class:`~arrive.errors.ModelIntegrityError` when stored bytes do not match their
    checksum.
    """

    def register(
        self, files: Mapping[str, bytes | Path], metadata: Mapping[str, Any]
    ) -> ModelVersion:
        """Store a new version: file name -> contents (bytes, or a path to read).

        Names are plain file names (letters, digits, ``._-``; no directories).
        Metadata must be JSON-serialisable without loss (no NaN, no infinities).
        """
        ...

    def get(self, ref: str) -> ModelVersion:
        """The record of a version; no file is read."""
        ...

    def versions(self) -> list[ModelVersion]:
        """Every stored version, oldest first."""
        ...

    def open(self, ref: str) -> LoadedModel:
        """All files of a version, each verified against its checksum."""
        ...

    def read_file(self, ref: str, name: str) -> bytes:
        """One file of a version, verified against its checksum."""
        ...

    def set_alias(self, alias: str, ref: str | None, *, reason: str) -> AliasChange:
        """Point ``alias`` at the version ``ref`` resolves to (``None`` clears it).

        Raises:
            RegistryConflict: the alias already points at that version.
        """
        ...

    def alias_history(self, alias: str) -> list[AliasChange]:
        """Every change of ``alias``, oldest first."""
        ...

    def rollback(self, alias: str, *, reason: str = "rollback") -> AliasChange:
        """Point ``alias`` back at the version that held it before the current one.

        Rollbacks stack: after promoting 1, 2, 3, two rollbacks lead to 1.

        Raises:
            RegistryConflict: there is no earlier holder, or it has been deleted.
        """
        ...

    def delete(self, version: str) -> None:
        """Remove a version and its files.

        Raises:
            RegistryConflict: an alias points at it.
        """
        ...

    def gc(self, keep_last: int, *, dry_run: bool = False) -> list[str]:
        """Delete all but the ``keep_last`` newest versions, keeping every aliased
        version and each alias's rollback target. Returns the versions deleted (or,
        with ``dry_run``, that would be)."""
        ...
