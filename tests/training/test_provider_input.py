"""Trained on a simulated market with the provider's history, the model uses the provider's
travel time: feature selection keeps it and the training report names it; with
``residual`` it predicts the residual over it, offline and online alike."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from arrive import datadir
from arrive.ingest.simulator import SimulationConfig, simulate, write_simulation
from arrive.models.artifact import ModelBundle
from arrive.models.check import inspect, make_probe
from arrive.serving.compiled import CompiledModel
from arrive.training.pipeline import (
    TrainConfig,
    TrainResult,
    calibrate_model,
    fit_model,
    run_training,
)

FEATURE = "travel_time_provider_s"
BUILTIN = "travel_estimate_s"
PARAMS = {"n_estimators": 80}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("provider")
    config = SimulationConfig(seed=4, days=6, orders_per_day=700, provider_observations=True)
    with datadir.staged(root / "data") as stage:
        write_simulation(simulate(config), stage)
    return root / "data"


@pytest.fixture(scope="module")
def trained(data: Path) -> TrainResult:
    return run_training(data, data.parent / "run", TrainConfig(model_params=PARAMS))


@pytest.fixture(scope="module")
def residual(trained: TrainResult) -> ModelBundle:
    """The pipeline's fit and calibration with ``residual``, on the same features and split,
    bundled like ``trained``'s model (its probe taken from the residual model)."""
    assert trained.bundle is not None
    assert trained.training_set is not None
    assert trained.split is not None
    config = TrainConfig(model_params=PARAMS, residual=True)
    y = trained.training_set.target_s
    model, _ = fit_model(trained.features, y, trained.split, config)
    calibrate_model(model, trained.features, y, trained.split)
    rows = trained.features.frame.drop("order_id")[trained.split.train]
    return replace(trained.bundle, model=model, probe=make_probe(model, rows))


def test_feature_selection_keeps_the_provider_time(trained: TrainResult) -> None:
    (decision,) = [d for d in trained.decisions if d.group == "provider"]
    assert decision.kept
    assert FEATURE in trained.features.names
    assert trained.bundle is not None
    assert trained.bundle.model.feature_importance()[FEATURE] > 0.0


def test_the_training_report_names_the_provider_time(trained: TrainResult) -> None:
    report = html.unescape((trained.run_dir / "report.html").read_text())
    assert FEATURE in report
    assert re.search(r"'provider': validation MAE [^<]*→ kept", report)


def test_without_the_option_the_trees_predict_the_duration_itself(trained: TrainResult) -> None:
    assert trained.bundle is not None
    assert trained.bundle.model.residual_of == ()
    assert "residual_of" not in trained.bundle.model.get_params()


def test_the_residual_model_answers_the_provider_time_plus_its_trees(
    trained: TrainResult, residual: ModelBundle
) -> None:
    model = residual.model
    assert model.residual_of == (FEATURE, BUILTIN)
    X = trained.features.frame.drop("order_id").head(500)
    matrix = model.matrix(X)
    provider, builtin = X[FEATURE].to_numpy(), X[BUILTIN].to_numpy()
    base = np.where(np.isnan(provider), builtin, provider)
    np.testing.assert_allclose(model.base(matrix), base)
    np.testing.assert_allclose(model.predict_raw(X), model.tree_outputs(matrix) + base[:, None])
    assert np.abs(base).mean() > 60.0  # the base is material: leaving it out would show


def test_the_served_residual_model_answers_as_offline(
    trained: TrainResult, residual: ModelBundle
) -> None:
    files = residual.to_files()
    assert inspect(files).status == "ok"  # the probe's reference holds with the base
    loaded = ModelBundle.from_files(files).model
    assert loaded.residual_of == (FEATURE, BUILTIN)
    X = trained.features.frame.drop("order_id").tail(300)
    want = residual.model.predict(X)
    compiled = CompiledModel(loaded, "none")
    np.testing.assert_allclose(compiled.predict(X.to_dicts()), want, rtol=1e-12)
    single = np.vstack([compiled.predict([row]) for row in X.head(50).to_dicts()])
    np.testing.assert_allclose(single, want[:50], rtol=1e-12)
