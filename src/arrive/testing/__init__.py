"""Shipped test support: conformance suites, real servers for tests, and factories.

Import the module you need; nothing is re-exported here, so importing
``arrive.testing`` pulls in neither pytest nor any backend.

* :mod:`arrive.testing.registry_contract` — the suite every
  :class:`~arrive.registry.base.ModelRegistry` backend passes unchanged.
* :mod:`arrive.testing.store_contract` — the suite every online store passes.
* :mod:`arrive.testing.source_contract` — the suite every event source passes.
* :mod:`arrive.testing.servers` — real processes for tests (Redis, Kafka, the service, ingest).
* :mod:`arrive.testing.factories` — small random marketplaces as event logs.
* :mod:`arrive.testing.trained` — one small trained model per test session (pytest fixtures).
* :mod:`arrive.testing.disk` — a disk that fills up on demand (an opener seam).
* :mod:`arrive.testing.history` — hand-made event histories featurised offline and online.
* :mod:`arrive.testing.artifacts` — a small real model bundle, and broken booster
  files re-signed in a registry's index (damage only the model check catches).
"""

__all__: list[str] = []
