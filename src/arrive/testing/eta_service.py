"""Driving the ETA service from tests and benchmarks: request bodies, polling, and
``arrive serve`` as a child process on a free loopback port.

::

    with ServeProcess({"ARRIVE_REGISTRY_DIR": str(registry)}, workers=2) as service:
        service.wait_ready()
        urllib.request.urlopen(service.url + "/healthz")
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from arrive.datadir import ORDER_COLUMNS
from arrive.errors import InternalError
from arrive.testing.ports import free_port

HOST: Final = "127.0.0.1"


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "it") -> None:
    """Poll ``condition`` every 10 ms until it holds.

    Raises:
        InternalError: it did not hold within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise InternalError(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.01)


def order_body(row: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The ``/v1/eta`` body of one row of an orders table (:func:`arrive.datadir.read_orders`):
    its columns beyond :data:`~arrive.datadir.ORDER_COLUMNS` are the order's attributes."""
    body: dict[str, Any] = {"order_id": str(row["order_id"])}
    created = row.get("created_at")
    if created is not None:
        body["created_at"] = created.isoformat()
    for name in ("store_id", "market_id", "courier_id", "store_category"):
        if row.get(name) is not None:
            body[name] = str(row[name])
    for name in ("pickup_lat", "pickup_lon", "drop_lat", "drop_lon", "subtotal"):
        if row.get(name) is not None:
            body[name] = float(row[name])
    for name in ("items", "distinct_items"):
        if row.get(name) is not None:
            body[name] = int(row[name])
    attributes = {k: v for k, v in row.items() if k not in ORDER_COLUMNS and v is not None}
    if attributes:
        body["attributes"] = attributes
    return {**body, **extra}


class ServeProcess:
    """``arrive serve`` in a child process on a free loopback port (stopped by its pid).

    Args:
        env: extra environment (``ARRIVE_*`` settings).
        workers: worker processes.
        args: extra command-line arguments.
        log_path: where the service's output goes (default: a pipe, read on failure).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        workers: int = 1,
        args: tuple[str, ...] = (),
        log_path: Path | None = None,
    ) -> None:
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        self.env = {**os.environ, **env}
        self.command = [
            *(sys.executable, "-m", "arrive.cli"),
            *("serve", "--host", HOST, "--port", str(self.port), "--workers", str(workers)),
            *args,
        ]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeProcess:
        """Start the service (returns at once; see :meth:`wait_ready`)."""
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]
        return self

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Return once ``GET /readyz`` answers 200.

        Raises:
            InternalError: the service exited or did not get ready in time.
        """
        wait_for(self._ready, timeout_s, f"{self.url}/readyz")

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait for a graceful exit (SIGKILL after ``timeout_s``); the exit code."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise InternalError(f"arrive serve did not stop within {timeout_s} s") from None

    def log(self) -> str:
        """The service's output so far (with ``log_path``), for failure messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-4000:]

    def _ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise InternalError(f"arrive serve exited (code {code}):\n{self.log()}")
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2.0) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
