"""A transport whose writes of one event-loop turn go out as one write.

Both of the service's own connections write in small pieces: an HTTP answer's head
and body (uvicorn writes them separately), and the Redis commands of the requests
of one turn. Each ``transport.write`` is a system call and usually a TCP segment
the other side reads on its own, so the writes made during one turn are joined
and written once, at the end of the turn.
"""

from __future__ import annotations

import asyncio
from typing import Any


class JoinedWrites:
    """A transport whose writes of one loop turn go out as one write.

    Everything but ``write`` and ``close`` goes to the wrapped transport; ``close``
    writes what is pending first. Nothing is written once the transport is closing.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Queue ``data``; the turn's writes go out together when it ends."""
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def close(self) -> None:
        """Write what is pending, then close."""
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
