"""The service's listening sockets, in a module that imports nothing heavy.

uvicorn's supervisor pickles the sockets into every worker process it spawns, and a
worker answers the supervisor's liveness ping only once they are unpickled. Unpickling
a :class:`ReusePortListener` imports this module; were it part of the serving package,
it would import the whole app (LightGBM, Polars: seconds, and tens of seconds on a busy
host) before the worker could answer, and the supervisor would kill every worker it
starts. Here it imports the standard library alone.
"""

from __future__ import annotations

import socket
import sys
from typing import Any, Final

from arrive.errors import ConfigError

STARTUP_FAILURE: Final = 3
"""uvicorn's exit code for a worker that failed before serving (its supervisor then stops)."""


class ReusePortListener:
    """The service's address as uvicorn hands it to each worker process: unpickled there,
    it is that worker's own listening socket, bound with ``SO_REUSEPORT``.

    uvicorn pickles the same list of sockets into every worker it starts (and into
    the replacement of one that died); this stands in that list, so each worker gets a
    socket of its own without changing uvicorn's supervisor.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return reuse_port_socket, (self.host, self.port)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (not listening yet).

    Runs in a worker process before its logging is set up: a failure is printed and
    exits with uvicorn's startup-failure code, which stops the supervisor.
    """
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        print(f"arrive serve: worker cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        raise SystemExit(STARTUP_FAILURE) from None
    return sock


def check_free(host: str, port: int) -> None:
    """Raise unless ``host:port`` is free. The check binds without ``SO_REUSEPORT``, so it
    also fails when another service listens there with it (the workers would otherwise
    join that service's sockets and split its traffic)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"settings host, port: cannot listen on {host}:{port}: {exc}"
            ) from None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
