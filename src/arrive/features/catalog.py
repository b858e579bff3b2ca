"""The ordered feature set, and the hash of its definitions stored with every model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Final

from arrive.features import (
    calendar,
    courier,
    demand,
    market,
    order,
    provider,
    store_history,
    store_load,
    travel,
    weather,
)
from arrive.features.spec import FeatureGroup, FeatureSpec

#: Bump when the computation of any feature changes meaning.
DEFINITIONS_VERSION: Final = 3

GROUPS: Final[tuple[FeatureGroup, ...]] = (
    order,
    calendar,
    travel,
    provider,
    store_history,
    store_load,
    demand,
    market,
    courier,
    weather,
)


def definitions_hash(specs: Iterable[FeatureSpec]) -> str:
    """A short, stable hash of the feature definitions (names, entities, kinds, TTLs, version)."""
    payload = [DEFINITIONS_VERSION] + [[s.name, s.entity, s.kind, s.ttl_s] for s in specs]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]
