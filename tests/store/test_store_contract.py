"""The online-store conformance suite, run unchanged on every backend."""

from __future__ import annotations

from arrive.testing.store_contract import StoreContract


class TestStoreContract(StoreContract):
    pass
