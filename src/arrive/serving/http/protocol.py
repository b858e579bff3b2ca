"""uvicorn's httptools protocol with each response written in one piece.

uvicorn writes a response's status line and headers, then its body, with two
``transport.write`` calls: two system calls and two TCP segments per answer, which
the client then reads separately. Here the connection's writes made during one
event-loop turn (an answer's head and body are) are joined and written once, at
the end of the turn (:class:`~arrive.joined_writes.JoinedWrites`).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from arrive.joined_writes import JoinedWrites


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` over a :class:`JoinedWrites` transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWrites(transport, self.loop))  # type: ignore[arg-type]
