"""On the simulated marketplace the model must beat the heuristic by a wide margin,
and its feature importance must name the factors the simulator's ground truth uses."""

from __future__ import annotations

import pytest

from arrive import datadir
from arrive.ingest.simulator import SimulationConfig, simulate, write_simulation
from arrive.models.artifact import ModelBundle
from arrive.training.pipeline import TrainConfig, TrainResult, run_training

#: factor of the ground truth (arrive.ingest.simulator.truth) → features that carry it
FACTORS = {
    "store prep speed": ("store_prep_mean_1h", "store_prep_mean_1d", "store_prep_mean_7d"),
    "store load": ("store_open_orders", "store_orders_15m", "store_orders_1h"),
    "courier proximity": ("idle_couriers_near", "nearest_idle_courier_km"),
    "traffic and time of day": ("traffic", "hour_local", "travel_estimate_s"),
    "weather": ("weather_condition", "precipitation_mm", "temperature_c"),
    "distance": ("distance_km", "travel_estimate_s"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, dict[str, float]]:
    root = tmp_path_factory.mktemp("sim")
    simulation = simulate(SimulationConfig(seed=5, days=10, orders_per_day=2500))
    with datadir.staged(root / "data") as stage:
        write_simulation(simulation, stage)
    config = TrainConfig(select_groups=False, model_params={"n_estimators": 300})
    result = run_training(root / "data", root / "run", config)
    model_dir = root / "run" / "model"
    bundle = ModelBundle.from_files({p.name: p.read_bytes() for p in model_dir.iterdir()})
    return result, bundle.model.feature_importance()


def test_model_beats_the_heuristic_by_a_wide_margin(
    trained: tuple[TrainResult, dict[str, float]],
) -> None:
    metrics = trained[0].metrics
    assert metrics["mae_s"] <= 0.8 * metrics["heuristic_mae_s"]
    assert metrics["crossings"] == 0


@pytest.mark.parametrize("factor", sorted(FACTORS))
def test_feature_importance_names_each_factor(
    trained: tuple[TrainResult, dict[str, float]], factor: str
) -> None:
    importance = trained[1]
    share = sum(importance.get(name, 0.0) for name in FACTORS[factor])
    assert share >= 0.01, f"{factor}: {share:.3%} of the gain"
