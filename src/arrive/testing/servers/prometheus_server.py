"""A private, throw-away ``prometheus`` server on a free loopback port, for tests.

Its own temporary storage, short scrape and evaluation intervals, the given rule files
and scrape targets; ready once ``/-/ready`` answers; stopped by process id::

    with PrometheusServer(["127.0.0.1:8000"], rule_files=[rules]) as prometheus:
        prometheus.alerts()  # [{"labels": {"alertname": ...}, "state": "pending"}, ...]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from arrive.errors import InternalError
from arrive.testing.servers.eta_service import wait_for
from arrive.testing.servers.ports import answers_ok, free_port
from arrive.testing.servers.processes import terminate

_HOST: Final = "127.0.0.1"
_LOG: Final = "prometheus.log"


class PrometheusServer:
    """One ``prometheus`` process owned by this object.

    Args:
        targets: ``host:port`` of the ``/metrics`` endpoints to scrape (job ``arrive``).
        rule_files: recording and alert rule files to load.
        interval_s: the scrape and rule-evaluation interval (seconds, at least 1).
        executable: the server binary (looked up on PATH).
    """

    def __init__(
        self,
        targets: Sequence[str],
        rule_files: Sequence[Path] = (),
        interval_s: int = 1,
        executable: str = "prometheus",
    ) -> None:
        self.targets = list(targets)
        self.rule_files = [str(path) for path in rule_files]
        self.interval_s = interval_s
        self.executable = executable
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:{port}``."""
        return f"http://{_HOST}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server and return once it is ready.

        Raises:
            InternalError: the binary is missing, or the server exits or does not get
                ready within ``timeout_s``; the message holds its log.
        """
        binary = shutil.which(self.executable)
        if binary is None:
            raise InternalError(
                f"{self.executable} is not on PATH: install it (apt-get install prometheus)"
            )
        workdir = self._dir = Path(tempfile.mkdtemp(prefix="arrive-prometheus-"))
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps(self._config()), encoding="utf-8")  # JSON is YAML
        self.port = free_port(_HOST)
        with open(workdir / _LOG, "wb") as log:
            self._proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address={_HOST}:{self.port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        try:
            wait_for(self._ready, timeout_s, f"prometheus on port {self.port}")
        except InternalError:
            self.stop()
            raise

    def _config(self) -> dict[str, Any]:
        every = f"{self.interval_s}s"
        return {
            "global": {"scrape_interval": every, "evaluation_interval": every},
            "rule_files": self.rule_files,
            "scrape_configs": [
                {"job_name": "arrive", "static_configs": [{"targets": self.targets}]}
            ],
        }

    def _ready(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise InternalError(f"prometheus exited at start:\n{self.log()}")
        return answers_ok(self.url + "/-/ready")

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of ``GET /api/v1/{path}?params``."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5.0) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise InternalError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The samples of the instant query ``expr``."""
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """The active alerts (pending or firing), with their labels and state."""
        active: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return active

    def log(self) -> str:
        """The server's output so far, for failure messages."""
        if self._dir is None or not (self._dir / _LOG).exists():
            return ""
        return (self._dir / _LOG).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove its directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
