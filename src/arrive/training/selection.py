"""Choosing which features a model uses, on the validation window only.

Two rules, both decided without looking at the test period:

* a categorical with more distinct values than ``max_categories`` in the
  training rows is left out as a raw category (an id's history features carry it;
  a source attribute has none, and the note says so);
* feature groups built from history are tried out one at a time (backward
  elimination): a group stays only if dropping it makes the validation MAE of
  the P50 model worse. History aggregates that are noise on a given
  marketplace then do not dilute the model.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from arrive.features import FeatureSet
from arrive.training.split import Split

#: Groups that are always kept: what the order itself says and when it was placed.
ALWAYS_KEPT = ("order", "calendar", "travel")

FitScore = Callable[[FeatureSet], float]


@dataclass(frozen=True)
class GroupDecision:
    """Validation MAE with and without a group, and what was decided."""

    group: str
    mae_with_s: float
    mae_without_s: float
    kept: bool


def drop_wide_categoricals(
    features: FeatureSet, train_rows: npt.NDArray[np.int64], max_categories: int
) -> FeatureSet:
    """Leave out categoricals with more than ``max_categories`` values in the training rows."""
    frame = features.frame[train_rows]
    wide = {c for c in features.categorical if frame.get_column(c).n_unique() > max_categories}
    for name in sorted(wide):
        features = features.without({name}, _wide_reason(features, name, max_categories))
    return features


def _wide_reason(features: FeatureSet, name: str, max_categories: int) -> str:
    """Why a wide categorical is left out, naming its history features only when it has
    some (an id's entity has windows; a source attribute such as an area id has none)."""
    entity = next(s.entity for s in features.specs if s.name == name)
    history = [s.name for s in features.specs if s.entity == entity and s.kind != "categorical"]
    if entity != "order" and history:
        return (
            f"more than {max_categories} categories: represented by its history features"
            f" ({', '.join(history[:3])}{', …' if len(history) > 3 else ''})"
        )
    return (
        f"more than {max_categories} categories, too many to learn from as a raw category;"
        " no history features describe it, so the model does not use it"
    )


def select_groups(
    features: FeatureSet, fit_score: FitScore, *, tolerance: float = 0.002
) -> tuple[FeatureSet, list[GroupDecision]]:
    """Backward elimination over history groups, scored by ``fit_score`` (validation MAE, s).

    A group is dropped when the MAE without it is lower than with it by more than
    ``tolerance`` (relative).
    """
    decisions = []
    current = features
    best = fit_score(current)
    for group, names in features.groups.items():
        if group in ALWAYS_KEPT or not names:
            continue
        candidate = current.without(set(names), f"group '{group}' did not help on validation")
        score = fit_score(candidate)
        drop = score < best * (1.0 - tolerance)
        decisions.append(GroupDecision(group, best, score, kept=not drop))
        if drop:
            current, best = candidate, score
    return current, decisions


def drop_groups(features: FeatureSet, groups: Collection[str], why: str) -> FeatureSet:
    """``features`` without the history groups named in ``groups`` (those it has), each
    left out for ``why``: an earlier selection's decision applied without probes."""
    for group, names in features.groups.items():
        if group in groups and group not in ALWAYS_KEPT and names:
            features = features.without(set(names), f"group '{group}' {why}")
    return features


def selection_record(
    decisions: list[GroupDecision], data_end: str, reused: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What a model's ``metrics["selection"]`` keeps: the groups its selection dropped and
    the end of the data that selection was made on (``reused``: an earlier model's record,
    carried over with the version it came from)."""
    if reused is not None:
        return dict(reused)
    dropped = [d.group for d in decisions if not d.kept]
    return {"dropped_groups": dropped, "selected_on": data_end}


def validation_scorer(
    split: Split,
    target_s: npt.NDArray[np.float64],
    fit_mae: Callable[..., float],
    *,
    max_train_rows: int | None = None,
    seed: int = 0,
) -> FitScore:
    """A scorer that trains on ``split.train`` and returns the MAE on ``split.valid``.

    With ``max_train_rows``, a larger training part is sampled down to that many orders
    (at random with ``seed``, the same sample for every probe, in time order): every
    probe is compared on the same rows, and the validation orders are all used.
    """
    train = sample_rows(split.train, max_train_rows, seed)

    def score(features: FeatureSet) -> float:
        X = features.frame.drop("order_id")
        return fit_mae(
            X[train], target_s[train], X[split.valid], target_s[split.valid], features.categorical
        )

    return score


def sample_rows(rows: npt.NDArray[np.int64], limit: int | None, seed: int) -> npt.NDArray[np.int64]:
    """``rows`` when at most ``limit`` (or no limit), else ``limit`` of them at random,
    in their order."""
    if limit is None or rows.size <= limit:
        return rows
    picked = np.random.default_rng(seed).choice(rows.size, size=limit, replace=False)
    return rows[np.sort(picked)]
