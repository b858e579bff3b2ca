"""The event-source conformance suite, run unchanged on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from arrive.testing.source_contract import (
    FileBackend,
    KafkaBackend,
    MemoryBackend,
    RedisBackend,
    SourceBackend,
    SourceContract,
)


@pytest.fixture(
    params=[
        "memory",
        "file",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ]
)
def source_backend(request: pytest.FixtureRequest, tmp_path: Path) -> SourceBackend:
    if request.param == "memory":
        return MemoryBackend()
    if request.param == "file":
        return FileBackend(tmp_path / "data")
    if request.param == "redis":
        return RedisBackend(request.getfixturevalue("redis_url"))
    return KafkaBackend(request.getfixturevalue("kafka_bootstrap"))


class TestSourceContract(SourceContract):
    pass
