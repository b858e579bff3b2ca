"""A model bundle: everything serving needs, as named files (never pickle).

``QuantileEta`` boosters and ``model.json``, the fitted heuristic
(``heuristic.json``) and the feature schema with its definitions hash
(``features.json``) and, since models carry one, the probe batch with its reference
predictions (``probe.json``, see :mod:`arrive.models.check`). The registry stores
these files with checksums.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arrive.errors import InputFileError
from arrive.fallback import HeuristicEta
from arrive.models.check import PROBE_FILE, Probe
from arrive.models.quantile import QuantileEta

HEURISTIC_FILE = "heuristic.json"
FEATURES_FILE = "features.json"


@dataclass(frozen=True)
class ModelBundle:
    """A trained model, its fallback, its feature schema and its probe (None for
    versions registered before probes existed)."""

    model: QuantileEta
    heuristic: HeuristicEta
    features: dict[str, Any]
    probe: Probe | None = None

    @property
    def definitions_hash(self) -> str:
        return str(self.features["definitions_hash"])

    def to_files(self) -> dict[str, bytes]:
        files = self.model.to_files()
        files[HEURISTIC_FILE] = json.dumps(self.heuristic.to_dict()).encode()
        files[FEATURES_FILE] = json.dumps(self.features, indent=2).encode()
        if self.probe is not None:
            files[PROBE_FILE] = self.probe.to_bytes()
        return files

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> ModelBundle:
        """Rebuild a bundle; raises InputFileError naming what is missing or malformed.

        Parses the boosters in this process: a malformed booster file can crash it, so
        check files of unknown state with :func:`arrive.models.check.check_files` first.
        """
        heuristic, features = cls.heuristic_from_files(files)
        probe = Probe.from_bytes(files[PROBE_FILE]) if PROBE_FILE in files else None
        return cls(QuantileEta.from_files(files), heuristic, features, probe)

    @staticmethod
    def heuristic_from_files(files: Mapping[str, bytes]) -> tuple[HeuristicEta, dict[str, Any]]:
        """The heuristic and feature schema alone, without parsing any booster (so a broken
        booster file does not cost the version its intact heuristic).

        Raises:
            InputFileError: naming the file that is missing or malformed.
        """
        for name in (HEURISTIC_FILE, FEATURES_FILE):
            if name not in files:
                raise InputFileError(f"model bundle: {name} is missing")
        try:
            heuristic = HeuristicEta.from_dict(json.loads(files[HEURISTIC_FILE]))
            features = json.loads(files[FEATURES_FILE])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFileError(f"model bundle: malformed heuristic or features ({exc})") from exc
        return heuristic, features
