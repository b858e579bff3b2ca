"""The registry's index: versions, aliases and alias history, as one JSON document.

Pure: no IO and no clock. Every backend keeps one :class:`RegistryIndex`, loads it,
changes it with the functions here and stores it back, so the rules (version
numbering, alias stacks, what is protected from deletion) are written once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

from arrive.errors import ConfigError, ModelIntegrityError, ModelNotFound, RegistryConflict
from arrive.registry.base import ALIASES, AliasChange, AliasChangeKind, ArtifactFile, ModelVersion

#: Version of the index document's layout.
FORMAT: Final = 1


class RegistryIndex(msgspec.Struct, kw_only=True):
    """Everything a registry knows except the files' bytes.

    ``versions`` holds records with empty ``aliases``; :func:`view` fills them in.
    ``aliases`` is the current holder of each set alias; ``history`` every change.
    """

    format: int = FORMAT
    next_version: int = 1
    versions: dict[str, ModelVersion] = msgspec.field(default_factory=dict)
    aliases: dict[str, str] = msgspec.field(default_factory=dict)
    history: list[AliasChange] = msgspec.field(default_factory=list)


def encode(index: RegistryIndex) -> bytes:
    """The index as indented JSON."""
    return msgspec.json.format(msgspec.json.encode(index), indent=2)


def decode(data: bytes, *, source: str) -> RegistryIndex:
    """Parse an index document.

    Raises:
        ModelIntegrityError: ``data`` is not an index this version of Arrive reads.
    """
    try:
        index = msgspec.json.decode(data, type=RegistryIndex)
    except msgspec.DecodeError as exc:
        raise ModelIntegrityError(f"{source}: not a registry index ({exc})") from exc
    if index.format != FORMAT:
        raise ModelIntegrityError(f"{source}: index format {index.format}, expected {FORMAT}")
    return index


def check_alias(alias: str) -> None:
    """Raises ConfigError unless ``alias`` is one of :data:`ALIASES`."""
    if alias not in ALIASES:
        raise ConfigError(f"alias {alias!r} is unknown (use one of {', '.join(ALIASES)})")


def resolve(index: RegistryIndex, ref: str) -> str:
    """The version ``ref`` (a version or an alias name) designates.

    Raises:
        ModelNotFound: no such version, or the alias is not set.
    """
    if ref in index.versions:
        return ref
    if ref in ALIASES:
        holder = index.aliases.get(ref)
        if holder is None:
            raise ModelNotFound(f"alias {ref!r} points at no version")
        return holder
    if ref.isdigit():
        raise ModelNotFound(f"no version {ref} in this registry (latest: {_latest(index)})")
    raise ModelNotFound(f"{ref!r} is neither a version number nor an alias ({', '.join(ALIASES)})")


def _latest(index: RegistryIndex) -> str:
    return max(index.versions, key=int) if index.versions else "none"


def view(index: RegistryIndex, version: str) -> ModelVersion:
    """The record of an existing ``version`` with its current aliases."""
    aliases = tuple(a for a in ALIASES if index.aliases.get(a) == version)
    return msgspec.structs.replace(index.versions[version], aliases=aliases)


def ordered(index: RegistryIndex) -> list[str]:
    """Stored versions, oldest first."""
    return sorted(index.versions, key=int)


def add_version(
    index: RegistryIndex,
    files: dict[str, ArtifactFile],
    metadata: dict[str, Any],
    *,
    version: str,
    now: datetime,
) -> ModelVersion:
    """Record ``version`` (from :func:`next_version`) and advance the counter."""
    record = ModelVersion(version=version, created_at=now, files=files, metadata=metadata)
    index.versions[version] = record
    index.next_version = int(version) + 1
    return record


def next_version(index: RegistryIndex) -> str:
    """The number the next registered version gets (never one used before)."""
    return str(index.next_version)


def change_alias(
    index: RegistryIndex,
    alias: str,
    version: str | None,
    *,
    reason: str,
    now: datetime,
    kind: AliasChangeKind = "set",
) -> AliasChange:
    """Point ``alias`` at ``version`` (``None`` clears it) and record the change.

    Raises:
        RegistryConflict: the alias already points at ``version``.
    """
    previous = index.aliases.get(alias)
    if previous == version:
        holder = f"version {version}" if version is not None else "no version"
        raise RegistryConflict(f"alias {alias!r} already points at {holder}")
    if version is None:
        del index.aliases[alias]
    else:
        index.aliases[alias] = version
    change = AliasChange(
        alias=alias, version=version, previous=previous, changed_at=now, reason=reason, kind=kind
    )
    index.history.append(change)
    return change


def holders(index: RegistryIndex, alias: str) -> list[str | None]:
    """The alias's stack of holders: each set pushes, each rollback pops."""
    stack: list[str | None] = []
    for change in index.history:
        if change.alias != alias:
            continue
        if change.kind == "rollback":
            stack = stack[:-1]
        else:
            stack.append(change.version)
    return stack


def rollback_target(index: RegistryIndex, alias: str) -> str | None:
    """The holder a rollback of ``alias`` returns to (``None``: the alias was unset).

    Raises:
        RegistryConflict: the alias has no earlier holder.
    """
    stack = holders(index, alias)
    if len(stack) < 2:
        raise RegistryConflict(f"alias {alias!r} has no earlier version to roll back to")
    return stack[-2]


def protected(index: RegistryIndex) -> set[str]:
    """Versions that must survive garbage collection: aliased ones and rollback targets."""
    keep = set(index.aliases.values())
    for alias in ALIASES:
        stack = holders(index, alias)
        if len(stack) >= 2 and stack[-2] is not None:
            keep.add(stack[-2])
    return keep


def remove(index: RegistryIndex, version: str) -> None:
    """Forget ``version``.

    Raises:
        ModelNotFound: it is not stored.
        RegistryConflict: an alias points at it.
    """
    if version not in index.versions:
        raise ModelNotFound(f"no version {version} in this registry (latest: {_latest(index)})")
    held = sorted(a for a, v in index.aliases.items() if v == version)
    if held:
        raise RegistryConflict(
            f"version {version} is {' and '.join(held)}: move the alias before deleting it"
        )
    del index.versions[version]
