"""A model bundle: everything serving needs, as named files (never pickle).

``QuantileEta`` boosters and ``model.json``, the fitted heuristic
(``heuristic.json``) and the feature schema with its definitions hash
(``features.json``). The registry stores these files with checksums.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arrive.errors import InputFileError
from arrive.fallback import HeuristicEta
from arrive.models.quantile import QuantileEta

HEURISTIC_FILE = "heuristic.json"
FEATURES_FILE = "features.json"


@dataclass(frozen=True)
class ModelBundle:
    """A trained model, its fallback and its feature schema."""

    model: QuantileEta
    heuristic: HeuristicEta
    features: dict[str, Any]

    @property
    def definitions_hash(self) -> str:
        return str(self.features["definitions_hash"])

    def to_files(self) -> dict[str, bytes]:
        files = self.model.to_files()
        files[HEURISTIC_FILE] = json.dumps(self.heuristic.to_dict()).encode()
        files[FEATURES_FILE] = json.dumps(self.features, indent=2).encode()
        return files

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> ModelBundle:
        """Rebuild a bundle; raises InputFileError naming what is missing or malformed."""
        for name in (HEURISTIC_FILE, FEATURES_FILE):
            if name not in files:
                raise InputFileError(f"model bundle: {name} is missing")
        try:
            heuristic = HeuristicEta.from_dict(json.loads(files[HEURISTIC_FILE]))
            features = json.loads(files[FEATURES_FILE])
        except ValueError as exc:
            raise InputFileError(f"model bundle: malformed JSON ({exc})") from exc
        return cls(QuantileEta.from_files(files), heuristic, features)
