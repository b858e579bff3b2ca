"""Which wide categoricals are left out, and what the report says about them."""

from __future__ import annotations

import numpy as np
import polars as pl

from arrive.features import FeatureSet
from arrive.features.spec import FeatureSpec
from arrive.training.pipeline import _left_out_note
from arrive.training.selection import (
    GroupDecision,
    drop_groups,
    drop_wide_categoricals,
    selection_record,
    validation_scorer,
)
from arrive.training.split import Split


def _features() -> FeatureSet:
    n = 300
    frame = pl.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "store_id": [f"s{i}" for i in range(n)],
            "area": [f"a{i}" for i in range(n)],
            "store_prep_mean_7d": np.linspace(1, 2, n),
        }
    )
    specs = (
        FeatureSpec("store_id", "store", "categorical", None, "store id"),
        FeatureSpec("area", "order", "categorical", None, "source attribute 'area'"),
        FeatureSpec("store_prep_mean_7d", "store", "numeric", 3600.0, "store prep"),
    )
    return FeatureSet(frame, specs)


def test_an_id_is_represented_by_its_history_but_an_attribute_is_not() -> None:
    kept = drop_wide_categoricals(_features(), np.arange(300), max_categories=100)

    assert kept.names == ["store_prep_mean_7d"]
    assert "represented by its history features (store_prep_mean_7d)" in kept.left_out["store_id"]
    assert "history" not in kept.left_out["area"].split(";")[0]
    assert "no history features describe it" in kept.left_out["area"]


def test_a_left_out_group_does_not_contradict_a_used_feature_of_the_same_name() -> None:
    note = _left_out_note(
        "weather (group)", "the event log has no weather observations", ["weather", "distance_km"]
    )
    assert note.startswith("feature group 'weather' (built from weather events) not built")
    assert "'weather' come from the orders' own columns" in note
    assert _left_out_note("courier_id", "no value in this data", []) == (
        "feature 'courier_id' not used: no value in this data"
    )


def test_the_probes_train_on_one_sample_of_the_training_orders_and_all_validation_ones() -> None:
    features = _features()
    split = Split(
        "time", np.arange(200), np.arange(200, 250), np.arange(250, 280), np.arange(280, 300)
    )
    seen: list[tuple[list[str], int]] = []

    def fit_mae(Xt: pl.DataFrame, yt: object, Xv: pl.DataFrame, yv: object, cat: object) -> float:
        seen.append((Xt.get_column("store_id").to_list(), Xv.height))
        return 1.0

    score = validation_scorer(split, np.ones(300), fit_mae, max_train_rows=50, seed=3)
    score(features)
    score(features.without({"area"}, "tried without"))
    (first, valid_rows), (second, _) = seen
    assert first == second  # the same sample for every probe
    assert len(first) == 50
    assert len(set(first)) == 50
    assert set(first) <= {f"s{i}" for i in range(200)}  # training orders only, in order
    assert first == sorted(first, key=lambda s: int(s[1:]))
    assert valid_rows == 50  # every validation order
    unsampled: list[int] = []

    def record(Xt: pl.DataFrame, *_: object) -> float:
        unsampled.append(Xt.height)
        return 1.0

    validation_scorer(split, np.ones(300), record)(features)
    assert unsampled == [200]  # no limit: every training order


def test_a_reused_selection_drops_its_groups_and_keeps_the_rest_without_probes() -> None:
    plain = _features()
    groups = {"store": ("store_prep_mean_7d",), "calendar": ("area",)}
    features = FeatureSet(plain.frame, plain.specs, {}, groups)
    kept = drop_groups(features, ["store", "calendar", "absent"], "dropped earlier (reused)")

    # the store group's features are gone, with the reason; an always-kept group and a
    # group this data does not have change nothing
    assert "store_prep_mean_7d" not in kept.names
    assert "area" in kept.names
    assert any("group 'store' dropped earlier (reused)" in why for why in kept.left_out.values())
    unchanged = drop_groups(features, [], "never")
    assert unchanged.names == features.names


def test_a_selection_record_is_new_or_carried_over() -> None:
    decisions = [
        GroupDecision("store", 10.0, 9.0, kept=False),
        GroupDecision("courier", 10.0, 11.0, kept=True),
    ]
    made = selection_record(decisions, "2025-03-10 23:00:00+00:00", None)
    assert made == {"dropped_groups": ["store"], "selected_on": "2025-03-10 23:00:00+00:00"}
    reused = {**made, "from_version": "3"}
    assert selection_record([], "2025-03-12 23:00:00+00:00", reused) == reused
