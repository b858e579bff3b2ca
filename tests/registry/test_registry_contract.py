"""The registry conformance suite, run unchanged on every backend."""

from __future__ import annotations

from arrive.testing.registry_contract import RegistryContract


class TestRegistryContract(RegistryContract):
    pass
