"""Which wide categoricals are left out, and what the report says about them."""

from __future__ import annotations

import numpy as np
import polars as pl

from arrive.features import FeatureSet
from arrive.features.spec import FeatureSpec
from arrive.training.pipeline import _left_out_note
from arrive.training.selection import drop_wide_categoricals


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
