"""QuantileEta follows estimator conventions and keeps its statistical promise."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from arrive.calibration import conformal_scale
from arrive.errors import ConfigError, DataError, InputFileError
from arrive.models import QuantileEta


def _data(seed: int, n: int) -> tuple[pl.DataFrame, np.ndarray]:
    """Heteroscedastic durations: the spread grows with distance; a categorical shifts the mean."""
    rng = np.random.default_rng(seed)
    distance = rng.uniform(0.5, 10, n)
    zone = rng.choice(["a", "b", "c"], n)
    y = 600 + 150 * distance + np.where(zone == "b", 300, 0) + rng.gamma(2.0, 40 * distance)
    return pl.DataFrame({"distance_km": distance, "zone": zone}), y


def _fitted(seed: int = 0, quantiles: tuple[float, ...] = (0.5, 0.9)) -> QuantileEta:
    X, y = _data(1, 6000)
    model = QuantileEta(quantiles, n_estimators=300, seed=seed, n_jobs=1)
    model.fit(X[:4000], y[:4000], categorical=["zone"], eval_set=(X[4000:5000], y[4000:5000]))
    return model.calibrate(X[5000:], y[5000:])


def test_init_stores_parameters_unchanged() -> None:
    model = QuantileEta([0.9, 0.5], num_leaves=7)
    assert model.quantiles == [0.9, 0.5]
    assert model.get_params()["num_leaves"] == 7
    assert not hasattr(model, "boosters_")


def test_p90_coverage_holds_on_the_next_period() -> None:
    model = _fitted()
    X, y = _data(2, 5000)
    pred = model.predict(X)
    coverage = float(np.mean(y <= pred[:, 1]))
    assert 0.88 <= coverage <= 0.92
    assert 0.46 <= float(np.mean(y <= pred[:, 0])) <= 0.54


def test_quantiles_never_cross() -> None:
    model = _fitted(quantiles=(0.1, 0.5, 0.75, 0.9))
    X, _ = _data(3, 3000)
    pred = model.predict(X)
    assert np.all(np.diff(pred, axis=1) >= 0)


def test_scales_are_never_negative_so_gaps_cannot_invert() -> None:
    y = np.array([1.0, 2.0, 3.0])
    base = np.array([10.0, 10.0, 10.0])  # every actual already below the base
    assert conformal_scale(y, base, np.ones(3) * 5, 0.9) == 0.0


def test_deterministic_for_a_seed_and_round_trips_through_files() -> None:
    X, _ = _data(4, 500)
    a, b = _fitted(seed=7), _fitted(seed=7)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    restored = QuantileEta.from_files(a.to_files())
    np.testing.assert_array_equal(a.predict(X), restored.predict(X))
    assert all(not name.endswith(".pkl") for name in a.to_files())


def test_given_rounds_each_booster_trains_for_its_own_without_early_stopping() -> None:
    X, y = _data(1, 3000)
    model = QuantileEta(n_estimators=300, seed=0, n_jobs=1)
    valid = (X[2000:], y[2000:])
    model.fit(X[:2000], y[:2000], categorical=["zone"], eval_set=valid, rounds={0.5: 40, 0.9: 7})
    assert model.rounds_ == {0.5: 40, 0.9: 7}
    assert {q: b.current_iteration() for q, b in model.boosters_.items()} == {0.5: 40, 0.9: 7}
    assert model.curves_ == {}  # no validation set was scored
    with pytest.raises(ConfigError, match=r"rounds: one per quantile of \[0.5, 0.9\]"):
        model.fit(X, y, categorical=["zone"], rounds={0.5: 40})


def test_unseen_category_is_treated_as_missing() -> None:
    model = _fitted()
    X = pl.DataFrame({"distance_km": [3.0, 3.0], "zone": ["a", "never-seen"]})
    pred = model.predict(X)
    assert np.isfinite(pred).all()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"quantiles": (0.5, 1.2)}, "quantiles"),
        ({"quantiles": ()}, "quantiles"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"num_leaves": 0}, "num_leaves"),
        ({"anchor_objective": "poisson"}, "anchor_objective"),
    ],
)
def test_bad_parameters_name_the_parameter(params: dict[str, object], field: str) -> None:
    quantiles = params.pop("quantiles", (0.5, 0.9))
    X, y = _data(5, 100)
    with pytest.raises(ConfigError, match=field):
        QuantileEta(quantiles, **params).fit(X, y)  # type: ignore[arg-type]


def test_missing_target_values_are_refused() -> None:
    X, y = _data(6, 100)
    y[3] = np.nan
    with pytest.raises(DataError, match="target: 1 values"):
        QuantileEta().fit(X, y)


def test_malformed_artifact_is_refused() -> None:
    files = _fitted().to_files()
    files["model.json"] = b"{not json"
    with pytest.raises(InputFileError):
        QuantileEta.from_files(files)
