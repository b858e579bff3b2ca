"""A model bundle: everything serving needs, as named files (never pickle).

``QuantileEta`` boosters and ``model.json``, the fitted heuristic
(``heuristic.json``) and the feature schema with its definitions hash
(``features.json``), since models carry one, the probe batch with its reference
predictions (``probe.json``, see :mod:`arrive.models.check`) and, since models carry
one, the reference profile of the training features (``profile.json``, see
:mod:`arrive.models.profile`). The registry stores these files with checksums.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arrive.errors import InputFileError
from arrive.fallback import HeuristicEta
from arrive.models.check import PROBE_FILE, Probe
from arrive.models.profile import PROFILE_FILE, Profile
from arrive.models.quantile import QuantileEta

HEURISTIC_FILE = "heuristic.json"
FEATURES_FILE = "features.json"


@dataclass(frozen=True)
class ModelBundle:
    """A trained model, its fallback, its feature schema, its probe and the reference
    profile of its training features (each None for versions registered before they
    existed)."""

    model: QuantileEta
    heuristic: HeuristicEta
    features: dict[str, Any]
    probe: Probe | None = None
    profile: Profile | None = None

    @property
    def definitions_hash(self) -> str:
        return str(self.features["definitions_hash"])

    def to_files(self) -> dict[str, bytes]:
        files = self.model.to_files()
        files[HEURISTIC_FILE] = json.dumps(self.heuristic.to_dict()).encode()
        files[FEATURES_FILE] = json.dumps(self.features, indent=2).encode()
        if self.probe is not None:
            files[PROBE_FILE] = self.probe.to_bytes()
        if self.profile is not None:
            files[PROFILE_FILE] = self.profile.to_bytes()
        return files

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> ModelBundle:
        """Rebuild a bundle; raises InputFileError naming what is missing or malformed.

        Parses the boosters in this process: a malformed booster file can crash it, so
        check files of unknown state with :func:`arrive.models.check.check_files` first.
        """
        heuristic, features = cls.heuristic_from_files(files)
        probe = Probe.from_bytes(files[PROBE_FILE]) if PROBE_FILE in files else None
        profile = cls.profile_from_files(files)
        return cls(QuantileEta.from_files(files), heuristic, features, probe, profile)

    @staticmethod
    def profile_from_files(files: Mapping[str, bytes]) -> Profile | None:
        """The reference profile alone (None for a version trained without one), without
        parsing any booster: what the monitor needs of each version.

        Raises:
            InputFileError: the profile is malformed.
        """
        return Profile.from_bytes(files[PROFILE_FILE]) if PROFILE_FILE in files else None

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
