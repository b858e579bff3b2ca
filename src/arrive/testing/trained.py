"""One small trained model per test session, as pytest fixtures shared by test folders.

A pytest plugin: ``tests/conftest.py`` registers it (``pytest_plugins``), so the
serving, HTTP and CLI tests see the same session model, trained once:

* ``trained`` (session): a small marketplace's data directory, the marketplace, and
  the bundle files and metadata of a model trained on it;
* ``orders``: ``/v1/eta`` bodies of the marketplace's last orders (fresh features);
* ``local_registry(n)``: a registry directory with n copies of the model, production → 1;
* ``admin_token``: :data:`TOKEN`, the admin token of the tests' services;

and :func:`production_model`, the same recipe for a process that serves from a registry
directory (the fault suite, the load gate, benches).

It imports nothing heavy at load time: pytest loads it for every run, and the
marketplace, training and registries are imported by the fixtures that use them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from arrive.models.artifact import ModelBundle
    from arrive.registry import InMemoryRegistry, LocalRegistry
    from arrive.testing.factories import Marketplace

TIMEZONE = "Europe/Berlin"
TOKEN = "test-admin-token-0123456789"


@dataclass(frozen=True)
class Trained:
    """A trained model's data directory, marketplace, bundle files and metadata."""

    data_dir: Path
    market: Marketplace
    files: Mapping[str, bytes]
    metadata: Mapping[str, Any]
    compile_cache: Path

    def bundle(self) -> ModelBundle:
        from arrive.models.artifact import ModelBundle

        return ModelBundle.from_files(self.files)

    def registry(self, versions: int = 1) -> InMemoryRegistry:
        """An in-memory registry with ``versions`` copies of the model; production → 1."""
        from arrive.registry import InMemoryRegistry

        registry = InMemoryRegistry()
        for _ in range(versions):
            registry.register(dict(self.files), dict(self.metadata))
        registry.set_alias("production", "1", reason="test")
        return registry


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    from arrive.registry import InMemoryRegistry
    from arrive.testing.factories import random_marketplace, write_data_dir
    from arrive.training.pipeline import TrainConfig, run_training

    work = tmp_path_factory.mktemp("serving-model")
    market = random_marketplace(seed=1, n_orders=800, days=8)
    data = write_data_dir(work / "data", market, TIMEZONE)
    registry = InMemoryRegistry()
    config = TrainConfig(
        select_groups=False,
        model_params={"n_estimators": 80, "early_stopping_rounds": 1000, "num_leaves": 15},
    )
    result = run_training(data, work / "run", config, registry)
    loaded = registry.open(result.version or "")
    return Trained(data, market, loaded.files, loaded.metadata, work / "compiled")


@dataclass(frozen=True)
class Production:
    """A marketplace ending now, its data directory, and a registry directory whose
    ``production`` alias is a model trained on it."""

    market: Marketplace
    data_dir: Path
    registry_dir: Path


def production_model(
    work: Path,
    *,
    seed: int,
    n_orders: int,
    reason: str,
    days: int = 8,
    model_params: Mapping[str, Any] | None = None,
) -> Production:
    """A random marketplace of ``n_orders`` over ``days`` ending now (fresh features), its
    data directory under ``work``, and a model trained on it (no group selection,
    ``model_params`` over the defaults), registered in ``work/registry`` as production."""
    from arrive.registry import LocalRegistry
    from arrive.testing.factories import ending_now, random_marketplace, write_data_dir
    from arrive.training.pipeline import TrainConfig, run_training

    market = ending_now(random_marketplace(seed=seed, n_orders=n_orders, days=days))
    data = write_data_dir(work / "data", market, TIMEZONE)
    registry = LocalRegistry(work / "registry")
    config = TrainConfig(select_groups=False, model_params=dict(model_params or {}))
    result = run_training(data, work / "run", config, registry)
    registry.set_alias("production", result.version or "", reason=reason)
    return Production(market, data, registry.root)


@pytest.fixture
def admin_token() -> str:
    """The admin token of the tests' services."""
    return TOKEN


@pytest.fixture
def orders(trained: Trained) -> list[dict[str, Any]]:
    """Request bodies of the last orders of the trained marketplace (fresh features)."""
    from arrive.testing.servers.eta_service import order_body

    table = trained.market.orders.sort("created_at").tail(50)
    return [order_body(row) for row in table.iter_rows(named=True)]


@pytest.fixture
def local_registry(tmp_path: Path, trained: Trained) -> Callable[[int], LocalRegistry]:
    """``local_registry(n)``: a registry directory with n copies of the model; production → 1."""

    from arrive.registry import LocalRegistry

    def make(versions: int = 1) -> LocalRegistry:
        registry = LocalRegistry(tmp_path / "registry")
        for _ in range(versions):
            registry.register(dict(trained.files), dict(trained.metadata))
        registry.set_alias("production", "1", reason="test")
        return registry

    return make
