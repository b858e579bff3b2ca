"""Running the app under uvicorn (uvloop + httptools), with one or several worker processes.

The settings are loaded once, by the command; worker processes receive them
encoded in an environment variable and rebuild the app with :func:`worker_app`.
Several workers each listen on a socket of their own on the same address
(``SO_REUSEPORT``), so the kernel spreads new connections over them by their
addresses: with one socket shared by all (uvicorn's way), whichever worker woke
first accepted every waiting connection, and a client's keep-alive connections could
all land on one worker while the other idled (:class:`ReusePortListener`).
With several workers, ``PROMETHEUS_MULTIPROC_DIR`` points at a fresh temporary
directory (unless already set) so ``/metrics`` sums over every worker, and the
workers share a kill-switch file (a temporary one unless ``kill_switch_file`` is
set), so an admin call that reaches one worker switches them all.
SIGTERM and SIGINT stop gracefully: no new connections, in-flight requests get
``shutdown_timeout_s`` to finish, then the lifespan closes the predictor.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import msgspec
import uvicorn
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG
from uvicorn.supervisors import Multiprocess

from arrive.errors import ConfigError, InternalError
from arrive.serving.http.app import create_app
from arrive.serving.http.protocol import OneWriteHttpToolsProtocol
from arrive.serving.metrics import MULTIPROC_ENV
from arrive.serving.predictor import check_startup
from arrive.serving.settings import ServeSettings

SETTINGS_ENV: Final = "ARRIVE_SERVE_SETTINGS_JSON"
_APP: Final = "arrive.serving.http.server:worker_app"
_HEALTHCHECK_S: Final = 60
"""Seconds a worker may take to answer the supervisor's ping (uvicorn's default: 5)."""
_STARTUP_FAILURE: Final = 3
"""uvicorn's exit code for a worker that failed before serving (its supervisor then stops)."""
logger = logging.getLogger("uvicorn.error")


def serve(settings: ServeSettings) -> None:
    """Serve until SIGTERM or SIGINT; returns after a graceful stop.

    Raises:
        ConfigError: settings the predictor refuses, or several workers and the
            address is taken.
        InputFileError: ``replay_dir`` has no event log.
        InternalError: the app failed to start (the log above says why).
    """
    with _metrics_dir(settings.workers), _shared_kill_switch(settings) as shared:
        check_startup(shared)  # before any worker starts: a failed startup prints a traceback
        os.environ[SETTINGS_ENV] = encode_settings(shared)
        options: dict[str, Any] = {
            "factory": True,
            "host": settings.host,
            "loop": "uvloop",
            "http": OneWriteHttpToolsProtocol,
            "ws": "none",
            "lifespan": "on",
            "access_log": settings.access_log,
            "log_level": settings.log_level,
            "log_config": _logging_config(settings.log_level),
            "timeout_graceful_shutdown": int(settings.shutdown_timeout_s + 0.999),
            "server_header": False,
            # the supervisor kills a worker that has not answered its ping in time; a
            # worker only answers once it has imported the app, which on a busy machine
            # took longer than uvicorn's 5 s, and every replacement was killed the same way
            "timeout_worker_healthcheck": _HEALTHCHECK_S,
        }
        try:
            if settings.workers == 1:
                uvicorn.run(_APP, port=settings.port, **options)
                return
            host, port = settings.host, settings.port
            _check_free(host, port)
            config = uvicorn.Config(_APP, port=port, workers=settings.workers, **options)
            logger.info(
                "listening on %s:%d, %d workers with a socket each", host, port, config.workers
            )
            supervisor = Multiprocess(config, sockets=[ReusePortListener(host, port)])  # type: ignore[list-item]
            supervisor.run()
            if any(worker.exitcode == _STARTUP_FAILURE for worker in supervisor.processes):
                raise SystemExit(_STARTUP_FAILURE)  # uvicorn stopped, but returned as if done
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise InternalError(
                    f"the ETA service failed to start (exit code {exc.code}); see the log above"
                ) from None


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
        raise SystemExit(_STARTUP_FAILURE) from None
    return sock


def _check_free(host: str, port: int) -> None:
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


def worker_app() -> Starlette:
    """The app of one worker process, from the settings the command encoded (uvicorn factory)."""
    encoded = os.environ.get(SETTINGS_ENV)
    if encoded is None:
        raise InternalError(f"{SETTINGS_ENV} is not set: start the service with `arrive serve`")
    return create_app(decode_settings(encoded))


def encode_settings(settings: ServeSettings) -> str:
    """``settings`` as JSON (paths as strings), for :func:`decode_settings`."""
    return msgspec.json.encode(settings, enc_hook=str).decode()


def decode_settings(encoded: str) -> ServeSettings:
    """The settings :func:`encode_settings` encoded."""
    return msgspec.json.decode(encoded, type=ServeSettings, dec_hook=_path_hook)


def _path_hook(kind: type, value: Any) -> Any:
    if kind is Path:
        return Path(value)
    raise NotImplementedError(kind)


@contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    if workers == 1 or os.environ.get(MULTIPROC_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="arrive-metrics-", ignore_cleanup_errors=True) as path:
        os.environ[MULTIPROC_ENV] = path
        try:
            yield
        finally:
            del os.environ[MULTIPROC_ENV]


@contextmanager
def _shared_kill_switch(settings: ServeSettings) -> Iterator[ServeSettings]:
    """``settings`` with a kill-switch file the workers share (a temporary one, removed at
    the end, when several workers run and none is configured)."""
    if settings.workers == 1 or settings.kill_switch_file is not None:
        yield settings
        return
    with tempfile.TemporaryDirectory(prefix="arrive-switch-", ignore_cleanup_errors=True) as path:
        yield msgspec.structs.replace(settings, kill_switch_file=Path(path) / "kill-switch")


def _logging_config(level: str) -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["arrive"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config
