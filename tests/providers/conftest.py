"""Provider fixtures: the cache backends the cache contract runs against, and a small
simulated marketplace with its simulated vendor in a real process, shared by the provider
tests of a session (the vendor starts in about two seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from arrive.ingest.simulator.config import SimulationConfig
from arrive.ingest.simulator.run import simulate, write_simulation
from arrive.testing.cache_store_contract import (
    CacheBackend,
    MemoryCacheBackend,
    RedisCacheBackend,
)
from arrive.testing.provider_contract import SIM_KEY
from arrive.testing.servers.vendor_sim import VendorProcess


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cache_backend(request: pytest.FixtureRequest) -> CacheBackend:
    if request.param == "memory":
        return MemoryCacheBackend()
    return RedisCacheBackend(request.getfixturevalue("redis_url"))


@pytest.fixture(scope="session")
def sim_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("vendor-market")
    write_simulation(simulate(SimulationConfig(seed=7, days=2, orders_per_day=200)), directory)
    return directory


@pytest.fixture(scope="session")
def vendor(sim_data_dir: Path) -> Iterator[VendorProcess]:
    with VendorProcess(sim_data_dir, ("--key", SIM_KEY)) as process:
        yield process
