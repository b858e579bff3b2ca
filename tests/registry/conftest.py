"""Registry fixtures: the backend every contract test runs against."""

from __future__ import annotations

from pathlib import Path

import pytest

from arrive.testing.registry_contract import InMemoryBackend, LocalBackend, RegistryBackend


@pytest.fixture(params=["memory", "local"])
def registry_backend(request: pytest.FixtureRequest, tmp_path: Path) -> RegistryBackend:
    if request.param == "memory":
        return InMemoryBackend()
    return LocalBackend(tmp_path / "registry")
