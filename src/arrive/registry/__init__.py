"""Model registry: versions, checksums, aliases, promotion and retention.

Backends (pick one explicitly; :class:`LocalRegistry` is the default of ``arrive``):

* :class:`InMemoryRegistry` — in the process, for tests and notebooks.
* :class:`LocalRegistry` — a directory with an ``index.json``, safe across processes.
"""

from arrive.registry.base import (
    ALIASES,
    AliasChange,
    ArtifactFile,
    LoadedModel,
    ModelRegistry,
    ModelVersion,
)
from arrive.registry.local import DEFAULT_ROOT, LocalRegistry
from arrive.registry.memory import InMemoryRegistry
from arrive.registry.promotion import (
    Promotion,
    PromotionDecision,
    PromotionPolicy,
    check_promotion,
    promote,
)
from arrive.registry.retention import versions_to_delete

__all__ = [
    "ALIASES",
    "DEFAULT_ROOT",
    "AliasChange",
    "ArtifactFile",
    "InMemoryRegistry",
    "LoadedModel",
    "LocalRegistry",
    "ModelRegistry",
    "ModelVersion",
    "Promotion",
    "PromotionDecision",
    "PromotionPolicy",
    "check_promotion",
    "promote",
    "versions_to_delete",
]
