"""An ASGI app served by uvicorn on a loopback port in a background thread.

The live replay shares one in-process feature store between the ingest engine and
the service, so the service runs in the replay's process. Leaving the ``with``
block (normally, on an error or on Ctrl-C) stops the server and joins its thread:
nothing is left behind.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any, Final

import uvicorn

from arrive.errors import InternalError

START_TIMEOUT_S: Final = 60.0


class LoopbackServer:
    """Serve ``app`` on ``127.0.0.1`` at a free port; ``url`` once started."""

    def __init__(self, app: Any) -> None:
        # IPPROTO_TCP explicitly: the event loop sets TCP_NODELAY only on sockets that say so.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="arrive-service", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise InternalError(f"the ETA service did not start: {self._error or 'timeout'}")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Ask the server to finish and wait for its thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._sock.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by __enter__
            self._error = exc
