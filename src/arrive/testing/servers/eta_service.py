"""Driving the ETA service from tests and benchmarks: request bodies, polling, and
``arrive serve`` as a child process on a free loopback port.

::

    with ServeProcess({"ARRIVE_REGISTRY_DIR": str(registry)}, workers=2) as service:
        service.wait_ready()
        urllib.request.urlopen(service.url + "/healthz")
"""

from __future__ import annotations

import json
import os
import re
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
from typing import TYPE_CHECKING, Any, Final

from arrive.datadir import ORDER_COLUMNS
from arrive.errors import InternalError
from arrive.testing.servers.ports import answers_ok, free_port

if TYPE_CHECKING:
    from arrive.serving.feeder import ReplayClock

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
        return answers_ok(self.url + "/readyz")

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


class ServiceProbe:
    """An ETA service at ``url`` probed over raw HTTP, for tests: statuses and bodies as
    sent (no retries, no types), metrics as numbers, and polling for a condition with a
    bounded deadline. Callers of the API use :class:`arrive.client.EtaClient`.

    Args:
        url: the service's base URL.
        process: the :class:`ServeProcess` running it, if any (kept for its log).
    """

    def __init__(self, url: str, process: ServeProcess | None = None) -> None:
        self.url = url
        self.process = process

    def request(
        self, method: str, path: str, body: Any = None, timeout_s: float = 30.0
    ) -> tuple[int, Any]:
        """``(status, decoded JSON body)`` of one request (text for non-JSON answers)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode()
        return status, json.loads(text) if text.startswith(("{", "[")) else text

    def eta(self, body: dict[str, Any]) -> dict[str, Any]:
        """The answer to one order; fails unless it is a 200."""
        status, answer = self.request("POST", "/v1/eta", body)
        if status != 200:
            raise InternalError(f"/v1/eta answered {status}: {answer}")
        return dict(answer)

    def ready(self) -> int:
        """The status of ``/readyz``."""
        return self.request("GET", "/readyz")[0]

    def health(self) -> dict[str, Any]:
        """The body of ``/healthz`` (which is always a 200)."""
        status, body = self.request("GET", "/healthz")
        if status != 200:
            raise InternalError(f"/healthz answered {status}: {body}")
        return dict(body)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        text = self.request("GET", "/metrics")[1]
        total = 0.0
        for line in str(text).splitlines():
            match = _SAMPLE.match(line)
            if match is None or match["name"] != name:
                continue
            found = dict(_LABEL.findall(match["labels"] or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match["value"])
        return total

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        """Poll ``condition`` until it holds (fails after ``timeout_s``)."""
        wait_for(condition, timeout_s, what)

    def answers_with_model(self, body: dict[str, Any]) -> bool:
        """True when the model (not the heuristic) answers ``body``."""
        return self.eta(body)["fallback"] is None


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def fill_redis(url: str, data_dir: Path, timeout_s: float = 120.0) -> ReplayClock:
    """Replay ``data_dir``'s event log into the Redis at ``url`` through the online engine.

    Returns:
        The replay's clock (its ``now()`` is the log's last event time).

    Raises:
        InternalError: the replay failed or did not finish within ``timeout_s``.
    """
    from arrive.serving.feeder import ReplayFeeder
    from arrive.store.urls import open_store

    store = open_store(url, "redis")
    feeder = ReplayFeeder(data_dir, store)
    feeder.start()
    try:
        if not feeder.wait(timeout_s):
            raise InternalError(f"the replay into {url} did not finish in {timeout_s} s")
        if feeder.error is not None:
            raise InternalError(f"the replay into {url} failed: {feeder.error}")
    finally:
        store.close()
    return feeder.clock
