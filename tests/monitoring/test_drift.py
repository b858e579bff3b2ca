"""Feature drift: served feature vectors (prediction-log rows) against the training profile
each model carries. Shifting one input raises that feature's PSI and flag, and no other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from arrive.errors import ConfigError, InputFileError
from arrive.features import calendar
from arrive.models.artifact import ModelBundle
from arrive.models.profile import PROFILE_FILE, Profile, profile_of
from arrive.monitoring.drift import NO_PROFILE, TOO_FEW, drift_by_version, psi, psi_by_feature
from arrive.monitoring.drift_metrics import DriftMetrics
from arrive.registry import InMemoryRegistry
from arrive.testing.artifacts import small_bundle
from arrive.testing.factories import random_marketplace, write_data_dir
from arrive.training.pipeline import TrainConfig, run_training

KINDS = {
    "distance_km": "numeric",
    "items": "numeric",
    "store_category": "categorical",
    "hour_local": "numeric",
}


def features(seed: int, n: int, *, km_scale: float = 1.0, thai: float = 0.2) -> pl.DataFrame:
    """Feature vectors as the service builds them; ``km_scale`` and ``thai`` shift inputs."""
    rng = np.random.default_rng(seed)
    other = (1.0 - thai) / 2
    return pl.DataFrame(
        {
            "distance_km": rng.gamma(2.0, 1.5, n) * km_scale,
            "items": rng.integers(1, 6, n).astype(float),
            "store_category": rng.choice(["pizza", "sushi", "thai"], n, p=[other, other, thai]),
            "hour_local": rng.uniform(11, 14, n),
        }
    )


def log_of(frame: pl.DataFrame, version: str | None = "1") -> pl.DataFrame:
    """Prediction-log rows holding ``frame``'s vectors as the log encodes them."""
    encoded = [msgspec.json.encode(row).decode() for row in frame.iter_rows(named=True)]
    return pl.DataFrame({"model_version": [version] * len(encoded), "features": encoded})


@pytest.fixture(scope="module")
def reference() -> Profile:
    return profile_of(features(0, 20_000), KINDS, skip=calendar.CYCLIC)


def _by_feature(found: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["feature"]: row for row in found.iter_rows(named=True)}


def test_the_profile_bins_training_quantiles_and_leaves_the_calendar_out(
    reference: Profile,
) -> None:
    km = reference.features["distance_km"]
    assert len(km.cuts) == 9
    assert km.shares[-1] == 0.0  # no missing value in training
    assert all(0.09 < s < 0.11 for s in km.shares[:-1])  # deciles
    items = reference.features["items"]
    assert items.cuts == (1.0, 2.0, 3.0, 4.0, 5.0)  # few distinct values: fewer bins
    assert sum(items.shares) == pytest.approx(1.0)
    category = reference.features["store_category"]
    assert category.categories[-1] == "thai"
    assert category.bins(pl.Series(["thai", "ramen", None])).tolist() == [2, 3, 4]
    assert category.labels[3:] == ["other", "missing"]
    assert "hour_local" in reference.skipped
    assert Profile.from_bytes(reference.to_bytes()) == reference


def test_the_same_distribution_does_not_drift(reference: Profile) -> None:
    found = _by_feature(psi_by_feature(reference, log_of(features(1, 3000))))
    assert set(found) == {"distance_km", "items", "store_category"}
    assert all(row["psi"] < 0.02 for row in found.values())
    assert not any(row["drifted"] for row in found.values())
    assert all(row["orders"] == 3000 and row["note"] is None for row in found.values())


def test_a_shifted_numeric_input_drifts_alone(reference: Profile) -> None:
    found = _by_feature(psi_by_feature(reference, log_of(features(1, 3000, km_scale=1.5))))
    assert found["distance_km"]["psi"] > 0.2
    assert found["distance_km"]["drifted"]
    assert found["items"]["psi"] < 0.02
    assert found["store_category"]["psi"] < 0.02
    assert not found["items"]["drifted"]
    assert not found["store_category"]["drifted"]


def test_a_shifted_category_mix_drifts_alone(reference: Profile) -> None:
    found = _by_feature(psi_by_feature(reference, log_of(features(1, 3000, thai=0.6))))
    assert found["store_category"]["drifted"]
    assert not found["distance_km"]["drifted"]
    assert not found["items"]["drifted"]


def test_a_feed_that_stops_drifts_through_its_missing_bin(reference: Profile) -> None:
    served = features(1, 3000).with_columns(pl.lit(None, pl.Float64).alias("distance_km"))
    found = _by_feature(psi_by_feature(reference, log_of(served)))
    assert found["distance_km"]["drifted"]
    assert not found["items"]["drifted"]


def test_an_unseen_category_falls_in_other(reference: Profile) -> None:
    served = features(1, 3000).with_columns(pl.lit("ramen").alias("store_category"))
    found = _by_feature(psi_by_feature(reference, log_of(served)))
    assert found["store_category"]["drifted"]


def test_too_few_orders_are_never_called_drifted(reference: Profile) -> None:
    found = _by_feature(psi_by_feature(reference, log_of(features(1, 100, km_scale=3.0))))
    assert found["distance_km"]["psi"] > 0.2  # measured, but not enough to be sure
    assert not found["distance_km"]["drifted"]
    assert found["distance_km"]["note"] == TOO_FEW
    many = psi_by_feature(reference, log_of(features(1, 100, km_scale=3.0)), min_orders=100)
    assert _by_feature(many)["distance_km"]["drifted"]


def test_answers_without_features_do_not_count(reference: Profile) -> None:
    served = log_of(features(1, 600)).vstack(
        pl.DataFrame(
            {"model_version": ["1"] * 50, "features": [None] * 50},
            schema_overrides={"features": pl.String},
        )
    )
    found = _by_feature(psi_by_feature(reference, served))
    assert found["items"]["orders"] == 600


def test_a_large_window_is_measured_on_a_sample_of_its_rows(reference: Profile) -> None:
    same = _by_feature(psi_by_feature(reference, log_of(features(1, 3000)), limit=1000))
    assert same["distance_km"]["orders"] == 3000  # every row counts, 1000 are decoded
    assert not any(row["drifted"] for row in same.values())
    shifted = log_of(features(1, 3000, km_scale=1.5))
    found = _by_feature(psi_by_feature(reference, shifted, limit=1000))
    assert found["distance_km"]["drifted"]
    assert not found["items"]["drifted"]


def test_a_window_without_features_measures_nothing(reference: Profile) -> None:
    empty = pl.DataFrame(
        {"model_version": ["1"] * 3, "features": [None] * 3},
        schema_overrides={"features": pl.String},
    )
    found = psi_by_feature(reference, empty, min_orders=0)
    assert found.get_column("psi").is_null().all()
    assert not found.get_column("drifted").any()


def test_each_version_against_its_own_profile_and_none_without_one(reference: Profile) -> None:
    window = pl.concat(
        [
            log_of(features(1, 800, km_scale=1.5), "2"),
            log_of(features(2, 800), "1"),
            log_of(features(3, 10), None),  # heuristic answers: no version
        ]
    )
    found = drift_by_version(window, {"2": reference, "1": None})
    old = found.filter(pl.col("version") == "1")
    assert old.select("feature", "note").rows() == [(None, NO_PROFILE)]
    new = _by_feature(found.filter(pl.col("version") == "2"))
    assert new["distance_km"]["drifted"]
    assert not new["items"]["drifted"]
    assert set(found.get_column("version")) == {"1", "2"}


def test_bad_parameters_are_refused(reference: Profile) -> None:
    with pytest.raises(ConfigError, match="threshold"):
        psi_by_feature(reference, log_of(features(1, 10)), threshold=-1)
    with pytest.raises(ConfigError, match="min_orders"):
        drift_by_version(log_of(features(1, 10)), {}, min_orders=-1)


def test_psi_of_identical_shares_is_zero_and_grows_with_the_shift() -> None:
    assert psi([0.5, 0.5], [50, 50]) == 0.0
    assert 0 < psi([0.5, 0.5], [60, 40]) < psi([0.5, 0.5], [80, 20])


def test_the_gauges_show_what_was_measured(reference: Profile) -> None:
    registry = CollectorRegistry()
    gauges = DriftMetrics()
    registry.register(gauges)
    window = pl.concat([log_of(features(1, 800, km_scale=1.5), "2"), log_of(features(2, 10), "1")])
    gauges.set_drift(drift_by_version(window, {"2": reference}))
    skew = pl.DataFrame(
        {"feature": ["hour_local", "items"], "mismatch_ratio": [1.0, None]},
        schema_overrides={"mismatch_ratio": pl.Float64},
    )
    gauges.set_skew(skew)
    text = generate_latest(registry).decode()
    assert 'arrive_feature_drift{feature="distance_km",version="2"} 1.0' in text
    assert 'arrive_feature_drift{feature="items",version="2"} 0.0' in text
    assert 'arrive_feature_psi{feature="items",version="2"}' in text
    assert 'version="1"' not in text  # no profile: nothing measured
    assert 'arrive_feature_skew_mismatch_ratio{feature="hour_local"} 1.0' in text
    assert 'feature="items"} ' not in text.split("arrive_feature_skew_mismatch_ratio")[-1]


# -- the profile travels with the model ---------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelBundle, dict[str, bytes]]:
    work = tmp_path_factory.mktemp("drift-model")
    data = write_data_dir(work / "data", random_marketplace(3, n_orders=700, days=6))
    registry = InMemoryRegistry()
    config = TrainConfig(select_groups=False, model_params={"n_estimators": 30})
    result = run_training(data, work / "run", config, registry)
    files = dict(registry.open(result.version or "").files)
    return ModelBundle.from_files(files), files


def test_training_stores_the_profile_of_the_model_features(
    trained: tuple[ModelBundle, dict[str, bytes]],
) -> None:
    bundle, files = trained
    assert PROFILE_FILE in files
    profile = bundle.profile
    assert profile is not None
    assert ModelBundle.profile_from_files(files) == profile
    served = set(bundle.model.features_)
    assert set(profile.features) == served - set(profile.skipped)
    assert set(profile.skipped) == {"hour_local", "dow_local"}
    assert profile.rows > 0


def test_a_model_without_a_profile_still_loads() -> None:
    files = small_bundle().to_files()
    assert PROFILE_FILE not in files
    assert ModelBundle.from_files(files).profile is None
    assert ModelBundle.profile_from_files(files) is None


def test_a_malformed_profile_is_named(trained: tuple[ModelBundle, dict[str, bytes]]) -> None:
    _, files = trained
    with pytest.raises(InputFileError, match=PROFILE_FILE):
        ModelBundle.profile_from_files({**files, PROFILE_FILE: b'{"features": [{}]}'})


def test_served_vectors_of_the_trained_model_decode_against_its_profile(
    trained: tuple[ModelBundle, dict[str, bytes]], tmp_path: Path
) -> None:
    bundle, _ = trained
    assert bundle.profile is not None
    names = list(bundle.model.features_)
    row = dict.fromkeys(names)  # every feature unknown: the missing bins
    found = psi_by_feature(bundle.profile, log_of(pl.DataFrame([row] * 600)), min_orders=1)
    assert found.height == len(bundle.profile.features)
    assert found.get_column("drifted").all()
