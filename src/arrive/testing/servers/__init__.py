"""Real processes for tests: each starts on a free loopback port and stops with its fixture.

* :mod:`arrive.testing.servers.redis_server` — a throw-away ``redis-server``.
* :mod:`arrive.testing.servers.kafka_broker` — a throw-away Kafka-protocol broker (tansu).
* :mod:`arrive.testing.servers.eta_service` — ``arrive serve`` in a child process.
* :mod:`arrive.testing.servers.vendor_sim` — the simulated traffic/weather vendor, faults on demand.
* :mod:`arrive.testing.servers.ingest_child` — an ingest runner in a child process, for kill tests.
* :mod:`arrive.testing.servers.tcp_proxy` — a TCP proxy that can cut or stall a connection.
* :mod:`arrive.testing.servers.ports` — free loopback ports, and a readiness probe.
* :mod:`arrive.testing.servers.processes` — stopping a child process (SIGTERM, then SIGKILL).
"""
