"""A model's reference profile: how its features were distributed in training.

Training stores one with every model (``profile.json`` in the bundle, see
:class:`arrive.models.artifact.ModelBundle`); :mod:`arrive.monitoring.drift` compares
what the service serves with it. Versions trained before profiles existed have none.

* A numeric feature is cut into at most :data:`BINS` bins at its training quantiles
  (ties merge bins, so a feature with few distinct values gets fewer); values below the
  first cut fall in the first bin, above the last in the last.
* A categorical feature keeps the shares of its :data:`TOP_CATEGORIES` most frequent
  categories; every other category (unseen ones included) shares one ``other`` bin.
* Each feature also has a ``missing`` bin (null or NaN): a feed that stops is drift too.

Training leaves out the calendar features (``hour_local``, ``dow_local``): any window
shorter than their cycle (a day, a week) differs from training by construction, so their
drift says nothing about the world.

Example:
    >>> import polars as pl
    >>> frame = pl.DataFrame({"km": [float(i % 10) for i in range(100)], "zone": ["a"] * 100})
    >>> profile = profile_of(frame, {"km": "numeric", "zone": "categorical"})
    >>> profile.features["km"].bins(pl.Series([0.5, 9.5, None])).tolist()
    [0, 9, 10]
    >>> profile.features["zone"].shares
    (1.0, 0.0, 0.0)
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import InputFileError

PROFILE_FILE: Final = "profile.json"
BINS: Final = 10
TOP_CATEGORIES: Final = 20
_FORMAT: Final = 1
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FeatureProfile:
    """One feature's reference distribution.

    Attributes:
        name: the feature.
        kind: ``numeric`` or ``categorical``.
        cuts: numeric: the ascending, distinct cut points between bins (empty otherwise).
        categories: categorical: the categories kept (empty otherwise).
        shares: the training share of each bin: numeric ``len(cuts) + 1`` bins, or one per
            category then ``other``; then ``missing``. They sum to 1.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    cuts: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    shares: tuple[float, ...] = ()

    @property
    def labels(self) -> list[str]:
        """A readable name per bin (``<2.5``, ``[2.5, 4)``, ``>=4``; categories, ``other``;
        then ``missing``)."""
        if self.kind == "categorical":
            return [*self.categories, "other", "missing"]
        cuts = [f"{c:g}" for c in self.cuts]
        if not cuts:
            return ["all", "missing"]
        inner = [f"[{a}, {b})" for a, b in itertools.pairwise(cuts)]
        return [f"<{cuts[0]}", *inner, f">={cuts[-1]}", "missing"]

    def bins(self, values: pl.Series) -> IntArray:
        """The bin index of each of ``values`` (the last index is ``missing``)."""
        if self.kind == "categorical":
            return self._category_bins(values)
        numbers = values.cast(pl.Float64, strict=False).fill_nan(None)
        known = numbers.is_not_null().to_numpy()
        found = np.searchsorted(
            np.asarray(self.cuts), numbers.fill_null(0.0).to_numpy(), side="right"
        )
        return np.where(known, found, len(self.cuts) + 1).astype(np.int64)

    def counts(self, values: pl.Series) -> IntArray:
        """How many of ``values`` fall in each bin."""
        return np.bincount(self.bins(values), minlength=len(self.shares)).astype(np.int64)

    def _category_bins(self, values: pl.Series) -> IntArray:
        other, missing = len(self.categories), len(self.categories) + 1
        texts = values.cast(pl.String, strict=False)
        found = texts.replace_strict(
            list(self.categories), list(range(other)), default=other, return_dtype=pl.Int64
        )
        known = texts.is_not_null().to_numpy()
        return np.where(known, found.to_numpy(), missing).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "shares": list(self.shares)}
        if self.kind == "numeric":
            out["cuts"] = list(self.cuts)
        else:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureProfile:
        kind = data["kind"]
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"feature {data['name']!r}: unknown kind {kind!r}")
        made = cls(
            name=str(data["name"]),
            kind=kind,
            cuts=tuple(float(c) for c in data.get("cuts", ())),
            categories=tuple(str(c) for c in data.get("categories", ())),
            shares=tuple(float(s) for s in data["shares"]),
        )
        if len(made.shares) != len(made.labels):
            raise ValueError(f"feature {made.name!r}: {len(made.shares)} shares for its bins")
        return made


@dataclass(frozen=True)
class Profile:
    """The reference profiles of a model's features.

    Attributes:
        features: feature name → its profile, in the model's order.
        rows: training rows the profile was made from.
        skipped: features not profiled → why.
    """

    features: dict[str, FeatureProfile]
    rows: int
    skipped: dict[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        payload = {
            "format": _FORMAT,
            "rows": self.rows,
            "features": [p.to_dict() for p in self.features.values()],
            "skipped": self.skipped,
        }
        return json.dumps(payload, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """Raises:
        InputFileError: not a profile (naming :data:`PROFILE_FILE` and what is wrong)."""
        try:
            payload = json.loads(data)
            features = [FeatureProfile.from_dict(f) for f in payload["features"]]
            return cls(
                {f.name: f for f in features}, int(payload["rows"]), dict(payload["skipped"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFileError(f"model bundle: {PROFILE_FILE} is malformed ({exc})") from exc


def profile_of(
    frame: pl.DataFrame,
    kinds: Mapping[str, str],
    *,
    bins: int = BINS,
    top_categories: int = TOP_CATEGORIES,
    skip: tuple[str, ...] = (),
) -> Profile:
    """The profile of ``frame``'s feature columns (the training rows).

    Args:
        frame: one column per feature (other columns are ignored).
        kinds: feature name → ``numeric`` or ``categorical``; only these are profiled.
        bins: most bins per numeric feature.
        top_categories: categories kept per categorical feature.
        skip: features left out (recorded in :attr:`Profile.skipped`); training passes the
            calendar features (:data:`arrive.features.calendar.CYCLIC`).
    """
    features: dict[str, FeatureProfile] = {}
    skipped: dict[str, str] = {}
    for name, kind in kinds.items():
        if name in skip:
            skipped[name] = "cyclic: differs from training in any window shorter than its cycle"
        elif name not in frame.columns:
            skipped[name] = "not in the training rows"
        elif kind == "categorical":
            features[name] = _categorical(name, frame.get_column(name), top_categories)
        else:
            features[name] = _numeric(name, frame.get_column(name), bins)
    return Profile(features, frame.height, skipped)


def _numeric(name: str, values: pl.Series, bins: int) -> FeatureProfile:
    numbers = values.cast(pl.Float64, strict=False).fill_nan(None).drop_nulls().to_numpy()
    quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    cuts = np.unique(np.quantile(numbers, quantiles)) if numbers.size else np.array([])
    shaped = FeatureProfile(name, "numeric", tuple(float(c) for c in cuts))
    return _with_shares(shaped, values, len(cuts) + 2)


def _categorical(name: str, values: pl.Series, top: int) -> FeatureProfile:
    counts = values.cast(pl.String, strict=False).drop_nulls().value_counts(sort=True)
    ranked = counts.sort(["count", values.name], descending=[True, False])
    kept = tuple(str(c) for c in ranked.get_column(values.name).head(top).to_list())
    return _with_shares(FeatureProfile(name, "categorical", categories=kept), values, len(kept) + 2)


def _with_shares(shaped: FeatureProfile, values: pl.Series, n_bins: int) -> FeatureProfile:
    counts = np.bincount(shaped.bins(values), minlength=n_bins)
    shares = counts / max(int(counts.sum()), 1)
    return FeatureProfile(
        shaped.name,
        shaped.kind,
        shaped.cuts,
        shaped.categories,
        tuple(float(s) for s in shares),
    )
