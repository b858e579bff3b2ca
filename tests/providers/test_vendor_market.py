"""The simulated vendor answers from the simulation's own traffic and weather."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from arrive.errors import InputFileError
from arrive.ingest.simulator import truth
from arrive.ingest.simulator.config import SimulationConfig
from arrive.ingest.simulator.run import Simulation, simulate, write_simulation
from arrive.testing.vendor.market import SimulatedMarket

COORDS = ("pickup_lat", "pickup_lon", "drop_lat", "drop_lon")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Simulation, SimulatedMarket]:
    simulation = simulate(
        SimulationConfig(seed=5, days=2, orders_per_day=300, markets=2, provider_observations=True)
    )
    directory = tmp_path_factory.mktemp("market")
    write_simulation(simulation, directory)
    return simulation, SimulatedMarket(directory)


def test_the_speed_of_every_order_is_the_one_it_was_simulated_with(
    simulated: tuple[Simulation, SimulatedMarket],
) -> None:
    simulation, market = simulated
    rows = simulation.orders.select("pickup_lat", "pickup_lon", "created_at").rows()
    answered = [market.speed_share(lat, lon, at) for lat, lon, at in rows]
    assert answered == pytest.approx(simulation.truth["speed_share"].to_list(), rel=1e-9)


def test_travel_times_follow_the_simulated_speed(
    simulated: tuple[Simulation, SimulatedMarket],
) -> None:
    simulation, market = simulated
    columns = ("pickup_lat", "pickup_lon", "drop_lat", "drop_lon", "created_at")
    rows = simulation.orders.select(*columns).rows()
    routes = [market.route(*row, "driving") for row in rows]
    km = np.array([r.metres / 1000.0 / truth.DETOUR for r in routes])
    pace = np.array([r.seconds for r in routes]) / np.maximum(km, 1e-3)
    keep = km > 0.3
    slowness = 1.0 / simulation.truth["speed_share"].to_numpy()
    assert np.corrcoef(np.log(pace[keep]), np.log(slowness[keep]))[0, 1] > 0.7


def test_the_simulated_history_records_what_the_vendor_answered_for_each_order(
    simulated: tuple[Simulation, SimulatedMarket],
) -> None:
    simulation, market = simulated
    observed = simulation.events.filter(pl.col("type") == "travel_time_observation")
    legs = ("origin_lat", "origin_lon", "destination_lat", "destination_lon")
    orders = simulation.orders.select(
        "order_id", "created_at", *(pl.col(c).alias(n) for c, n in zip(COORDS, legs, strict=True))
    )
    joined = observed.select("order_id", "event_time", *legs, "travel_time_s", "distance_m").join(
        orders, on=["order_id", *legs], validate="1:1"
    )
    assert joined.height == simulation.orders.height  # one per order, for its store→drop leg
    asked = (joined["created_at"] - joined["event_time"]).dt.total_microseconds()
    assert (asked == 1_000_000).all()  # quoted 1 s before the order was placed
    answers = [market.route(*row, "driving") for row in joined.select(*legs, "event_time").rows()]
    assert joined["travel_time_s"].to_list() == [a.seconds for a in answers]
    assert joined["distance_m"].to_list() == [a.metres for a in answers]


def test_the_observations_change_nothing_else() -> None:
    config = SimulationConfig(seed=3, days=1, orders_per_day=200)
    plain = simulate(config)
    observed = simulate(dataclasses.replace(config, provider_observations=True))
    assert observed.orders.equals(plain.orders)
    others = observed.events.filter(pl.col("type") != "travel_time_observation")
    assert others.equals(plain.events)


def test_a_directory_that_is_no_simulation_is_refused(tmp_path: Path) -> None:
    (tmp_path / "import_summary.json").write_text('{"source": "doordash"}')
    with pytest.raises(InputFileError, match="not a simulated marketplace"):
        SimulatedMarket(tmp_path)
