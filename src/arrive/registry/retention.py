"""Which model versions garbage collection deletes (pure: no IO)."""

from __future__ import annotations

from collections.abc import Sequence, Set

from arrive.errors import ConfigError


def versions_to_delete(
    versions: Sequence[str], protected: Set[str], *, keep_last: int
) -> list[str]:
    """The versions outside the ``keep_last`` newest that nothing protects, oldest first.

    Args:
        versions: stored versions (numeric strings), in any order.
        protected: versions that must be kept whatever their age (aliased ones,
            rollback targets).
        keep_last: how many of the newest versions to keep (0 keeps only ``protected``).

    Raises:
        ConfigError: ``keep_last`` is negative.

    >>> versions_to_delete(["1", "2", "3", "4", "5"], {"1"}, keep_last=2)
    ['2', '3']
    """
    if keep_last < 0:
        raise ConfigError(f"keep_last: must be 0 or more, got {keep_last}")
    ordered = sorted(versions, key=int)
    old = ordered[: max(len(ordered) - keep_last, 0)]
    return [v for v in old if v not in protected]
