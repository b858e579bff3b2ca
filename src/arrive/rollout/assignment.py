"""Sticky assignment of units (customers, orders, stores, markets) to control or candidate.

A unit's position is a keyed BLAKE2b hash of its key, with the rollout's salt as the
hash key, read as a number uniform in [0, 1). The unit goes to the candidate when its
position is below the step's share. Positions never change during a rollout, so:

* a unit sees one variant for as long as the share does not change, in every worker
  and after every restart (nothing is stored per unit);
* raising the share only moves units from control to candidate, never back;
* a new rollout (a new salt) draws new positions, so the same customers are not
  always the first to try a candidate.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

from arrive.errors import ConfigError
from arrive.rollout.plan import UnitKey

Variant = Literal["control", "candidate"]
_SCALE: Final = float(2**64)


class Assigner:
    """Positions of unit keys for one salt (the rollout's; 16 bytes is plenty)."""

    __slots__ = ("_base",)

    def __init__(self, salt: bytes) -> None:
        if not 0 < len(salt) <= hashlib.blake2b.MAX_KEY_SIZE:
            raise ConfigError(f"salt: 1 to 64 bytes, got {len(salt)}")
        self._base = hashlib.blake2b(digest_size=8, key=salt)

    def position(self, key: str) -> float:
        """The unit's place in [0, 1): the same for the same key and salt, always."""
        hasher = self._base.copy()
        hasher.update(key.encode())
        return int.from_bytes(hasher.digest(), "big") / _SCALE

    def variant(self, key: str, share: float) -> Variant:
        """``candidate`` for a ``share`` (0..1) of units, the same ones at every call."""
        return "candidate" if self.position(key) < share else "control"


def unit_key(
    unit: UnitKey,
    *,
    order_id: str,
    customer_id: str | None = None,
    store_id: str | None = None,
    market_id: str | None = None,
) -> str:
    """The key a request is assigned by: ``customer`` falls back to the order when the
    request names no customer; ``store`` and ``market`` need their id.

    The kind is part of the key, so customer ``"7"`` and order ``"7"`` land apart.

    Raises:
        ConfigError: ``store`` or ``market`` asked for, and the request has none.
    """
    if unit == "customer" and customer_id:
        return f"customer:{customer_id}"
    if unit in ("customer", "order"):
        return f"order:{order_id}"
    value = store_id if unit == "store" else market_id
    if not value:
        raise ConfigError(f"{unit}_id: the rollout assigns by {unit}, and the request has none")
    return f"{unit}:{value}"
