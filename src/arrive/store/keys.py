"""The key layout of the online store in a key-value server: the one place it is spelled.

One key per entity holds the entity's whole packed feature vector, so a request
reads all it needs with one ``MGET``::

    {prefix}:v{LAYOUT_VERSION}:f:{kind}:{id}      e.g. arrive:v1:f:store:1845

The version changes whenever the key layout or the packing of values
(:mod:`arrive.store.codec`) changes, so a new release never misreads old keys:
they age out by their expiry. Kinds hold no ``:``, so the key of ``(kind, id)``
is unique even when ids hold ``:``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from arrive.store.base import EntityKey, checked_key

LAYOUT_VERSION: Final = 1
DEFAULT_PREFIX: Final = "arrive"


class KeyLayout:
    """Builds keys under one prefix.

    Args:
        prefix: namespace of one deployment (non-empty; several deployments or
            test runs can share a server under different prefixes).

    Raises:
        ValueError: the prefix is empty.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise ValueError("the key prefix must not be empty")
        self.prefix = prefix
        self._features = f"{prefix}:v{LAYOUT_VERSION}:f:"

    def feature_key(self, entity: EntityKey) -> str:
        """The key holding every feature of ``entity``.

        Raises:
            ValueError: the kind is empty or holds ``:``, or the id is empty.
        """
        kind, entity_id = checked_key(entity)
        return f"{self._features}{kind}:{entity_id}"

    def feature_keys(self, entities: Sequence[EntityKey]) -> list[str]:
        """:meth:`feature_key` of each of ``entities``, in order (plain strings are
        checked inline; anything else goes through :func:`checked_key`).

        Raises:
            ValueError: as :meth:`feature_key`.
        """
        base = self._features
        keys = [
            f"{base}{kind}:{eid}"
            for kind, eid in entities
            if type(kind) is str and kind and ":" not in kind and type(eid) is str and eid
        ]
        if len(keys) == len(entities):
            return keys
        return [self.feature_key(entity) for entity in entities]

    def feature_pattern(self) -> str:
        """A ``SCAN MATCH`` pattern for every feature key of this layout version."""
        return f"{_glob_escape(self._features)}*"


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
