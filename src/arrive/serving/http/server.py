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
Each connection runs under the request limits of the settings (header size and count,
read and idle timeouts, open connections per worker:
:mod:`arrive.serving.http.limits`).
SIGTERM and SIGINT stop gracefully: no new connections, in-flight requests get
``shutdown_timeout_s`` to finish, then the lifespan closes the predictor.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
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

from arrive.errors import InternalError
from arrive.monitoring.metrics import MULTIPROC_ENV
from arrive.serving.http.app import create_app
from arrive.serving.http.limits import LimitedHttpToolsProtocol, RequestLimits
from arrive.serving.settings import ServeSettings
from arrive.serving.wiring import check_startup
from arrive.sockets import STARTUP_FAILURE, ReusePortListener, check_free

SETTINGS_ENV: Final = "ARRIVE_SERVE_SETTINGS_JSON"
_APP: Final = "arrive.serving.http.server:worker_app"
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
            "http": functools.partial(
                LimitedHttpToolsProtocol, limits=RequestLimits.from_settings(settings)
            ),
            "ws": "none",
            "lifespan": "on",
            "access_log": settings.access_log,
            "log_level": settings.log_level,
            "log_config": _logging_config(settings.log_level),
            "timeout_graceful_shutdown": int(settings.shutdown_timeout_s + 0.999),
            "timeout_worker_healthcheck": math.ceil(settings.worker_healthcheck_timeout_s),
            "timeout_keep_alive": settings.keep_alive_timeout_s,
            "server_header": False,
        }
        try:
            if settings.workers == 1:
                uvicorn.run(_APP, port=settings.port, **options)
                return
            host, port = settings.host, settings.port
            check_free(host, port)
            config = uvicorn.Config(_APP, port=port, workers=settings.workers, **options)
            logger.info(
                "listening on %s:%d, %d workers with a socket each", host, port, config.workers
            )
            supervisor = Multiprocess(config, sockets=[ReusePortListener(host, port)])  # type: ignore[list-item]
            supervisor.run()
            if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
                raise SystemExit(STARTUP_FAILURE)  # uvicorn stopped, but returned as if done
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise InternalError(
                    f"the ETA service failed to start (exit code {exc.code}); see the log above"
                ) from None


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
