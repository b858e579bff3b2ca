"""The simulated vendor (``arrive providers serve-sim``) in a child process on a free
loopback port, driven over HTTP: faults on and off, its clock, its counters::

    with VendorProcess(data_dir) as vendor:
        vendor.set_faults(error_rate=1.0)     # an outage ...
        vendor.clear_faults()                 # ... and its end
        vendor.stats()["requests"]["route"]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from arrive.errors import InternalError
from arrive.testing.servers.eta_service import wait_for
from arrive.testing.servers.ports import answers_ok, free_port
from arrive.testing.servers.processes import terminate

HOST: Final = "127.0.0.1"


class VendorProcess:
    """``arrive providers serve-sim DATA_DIR`` on a free port (stopped by its pid).

    Args:
        data_dir: a simulated marketplace (``arrive simulate``).
        args: extra options (``--latency-ms 50``, ``--key K`` …).
    """

    def __init__(self, data_dir: Path, args: tuple[str, ...] = ()) -> None:
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        self.command = [
            *(sys.executable, "-m", "arrive.cli", "providers", "serve-sim", str(data_dir)),
            *("--host", HOST, "--port", str(self.port), "--seed", "0"),
            *args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)

    def start(self, timeout_s: float = 60.0) -> VendorProcess:
        """Start the vendor and wait until it answers ``/healthz``.

        Raises:
            InternalError: it exited or did not answer within ``timeout_s``.
        """
        self.proc = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        wait_for(self._ready, timeout_s, f"{self.url}/healthz")
        return self

    def stop(self) -> None:
        """SIGTERM (SIGKILL after a grace period) and reap."""
        if self.proc is not None:
            terminate(self.proc, grace_s=5.0)
            self.proc = None
        self._log.close()

    def set_faults(self, **changes: float) -> dict[str, float]:
        """Change the faults in force (``error_rate=1.0``, ``latency_ms=300`` …)."""
        return dict(self._post("/_faults", changes))

    def clear_faults(self) -> dict[str, float]:
        """No faults, no latency, no rate limit."""
        return dict(self._post("/_faults", {"clear": True}))

    def pin_clock(self, at: datetime | None) -> None:
        """The vendor's "now" (None: the wall clock again)."""
        self._post("/_clock", {"at": None if at is None else at.isoformat()})

    def stats(self) -> dict[str, dict[str, int]]:
        """Requests served by endpoint and by outcome since the start."""
        with urllib.request.urlopen(self.url + "/_stats", timeout=10) as answer:
            return dict(json.loads(answer.read()))

    def log(self) -> str:
        """What the process printed (for failure messages)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def _post(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise InternalError(f"{path} answered {exc.code}: {exc.read()[:200]!r}") from None

    def _ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise InternalError(f"the simulated vendor exited (code {code}):\n{self.log()}")
        return answers_ok(self.url + "/healthz")

    def __enter__(self) -> VendorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
