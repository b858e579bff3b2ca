"""Trained on a simulated market with the provider's history, the model uses the provider's
travel time: feature selection keeps it and the training report names it."""

from __future__ import annotations

import html
import re

import pytest

from arrive import datadir
from arrive.ingest.simulator import SimulationConfig, simulate, write_simulation
from arrive.training.pipeline import TrainConfig, TrainResult, run_training

FEATURE = "travel_time_provider_s"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    root = tmp_path_factory.mktemp("provider")
    config = SimulationConfig(seed=4, days=6, orders_per_day=700, provider_observations=True)
    with datadir.staged(root / "data") as stage:
        write_simulation(simulate(config), stage)
    return run_training(root / "data", root / "run", TrainConfig(model_params={"n_estimators": 80}))


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
