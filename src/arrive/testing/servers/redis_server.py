"""A private, throw-away ``redis-server`` on a free loopback port, for tests and benchmarks.

No persistence (``--save '' --appendonly no``), its own temporary directory,
ready once it answers PING, stopped by process id::

    with RedisServer() as server:
        store = RedisStore(RedisStoreConfig(url=server.url))
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from arrive.errors import InternalError
from arrive.testing.servers.ports import free_port
from arrive.testing.servers.processes import terminate

_HOST: Final = "127.0.0.1"
_START_ATTEMPTS: Final = 3
_LOG: Final = "redis.log"


class RedisServer:
    """One ``redis-server`` process owned by this object.

    Args:
        executable: the server binary (looked up on PATH).
        startup_timeout_s: how long to wait for the first PONG.
        extra_args: more command-line options (e.g. ``("--cluster-enabled", "yes")``).
        pick_port: where a free port comes from (a cluster node needs
            :func:`~arrive.testing.servers.ports.free_cluster_port`).

    Raises:
        InternalError: (from :meth:`start`) the binary is missing, or the server
            exits or stays silent; the message holds its log.
    """

    def __init__(
        self,
        executable: str = "redis-server",
        startup_timeout_s: float = 10.0,
        extra_args: Sequence[str] = (),
        pick_port: Callable[[], int] = free_port,
    ) -> None:
        self.executable = executable
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = tuple(extra_args)
        self.pick_port = pick_port
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:{port}/0``."""
        return f"redis://{_HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the server process is alive (paused counts as alive)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, port: int | None = None) -> None:
        """Start the server and return once it answers PING.

        Args:
            port: the port to listen on (e.g. the one of a server stopped earlier, to
                bring "the same" server back); default a free one, retried if taken.
                After :meth:`kill`, the server restarts in its old directory (a cluster
                node keeps its identity, from its ``nodes.conf``).
        """
        binary = shutil.which(self.executable)
        if binary is None:
            raise InternalError(
                f"{self.executable} is not on PATH: install it (apt-get install redis-server)"
            )
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="arrive-redis-"))
        workdir = self._dir
        for _ in range(_START_ATTEMPTS):
            self.port = port or self.pick_port()
            self._proc = subprocess.Popen(
                [*_command(binary, self.port, workdir), *self.extra_args],
                stdin=subprocess.DEVNULL,
            )
            if self._wait_ready(self._proc):
                return
            self._proc = None  # it exited: the port may have been taken meanwhile
        raise self._failure(f"redis-server exited at start {_START_ATTEMPTS} times")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)  # a paused server could not stop
            terminate(self._proc)
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), keeping its directory for a restart."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def _signal(self, signum: signal.Signals) -> None:
        if self._proc is None:
            raise InternalError("redis-server is not running")
        self._proc.send_signal(signum)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """True at the first PONG, False if the server exited; fails after the timeout."""
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if _pong(self.port):
                return True
            try:  # waits a little, and notices at once if the server died
                proc.wait(timeout=0.01)
            except subprocess.TimeoutExpired:
                continue
            return False
        raise self._failure(f"redis-server did not answer PING within {self.startup_timeout_s} s")

    def _failure(self, reason: str) -> InternalError:
        """Stops the server and describes why it would not start, with its log."""
        log_path = self._dir / _LOG if self._dir else None
        log = log_path.read_text(errors="replace")[-2000:] if log_path and log_path.exists() else ""
        self.stop()
        return InternalError(f"{reason} (port {self.port}); its log ends:\n{log}")


@contextlib.contextmanager
def redis_at(url: str | None) -> Iterator[str]:
    """``url`` when given; else the URL of a throw-away server that lives for the block."""
    if url:
        yield url
        return
    with RedisServer() as server:
        yield server.url


def _command(binary: str, port: int, workdir: Path) -> list[str]:
    return [
        binary,
        *("--port", str(port), "--bind", _HOST),
        *("--save", "", "--appendonly", "no"),
        *("--dir", str(workdir), "--logfile", str(workdir / _LOG)),
    ]


def _pong(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
