"""Shipped test support: conformance suites and fakes for Arrive's pluggable parts.

Import the module you need; nothing is re-exported here, so importing
``arrive.testing`` pulls in neither pytest nor any backend.

* :mod:`arrive.testing.registry_contract` — the suite every
  :class:`~arrive.registry.base.ModelRegistry` backend passes unchanged.
"""

__all__: list[str] = []
