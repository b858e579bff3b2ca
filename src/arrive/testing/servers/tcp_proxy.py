"""A small TCP proxy for fault tests (in the manner of Toxiproxy), run by an asyncio loop
in a background thread, so that sync tests can drive it::

    with TcpProxy("127.0.0.1", redis.port) as proxy:   # clients connect to proxy.port
        proxy.add_latency(0.2)   # every chunk, both ways, arrives 200 ms later
        proxy.cut()              # close every open connection (new ones still work)
        proxy.refuse()           # stop listening: new connections are refused
        proxy.restore()          # no latency, listening again on the same port

Latency delays each chunk without slowing the stream down (chunks are queued with
their delivery time), as a longer wire would. The controls return once they took
effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Coroutine
from types import TracebackType
from typing import Any, Final, TypeVar

from arrive.errors import InternalError

T = TypeVar("T")
_CHUNK: Final = 65_536
_CONTROL_TIMEOUT_S: Final = 10.0


class TcpProxy:
    """Forwards connections to ``target_host:target_port`` from a free loopback port.

    Args:
        target_host: where connections go.
        target_port: the target's port.
        host: the interface the proxy listens on.
    """

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.latency_s = 0.0
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        """Start listening (on a free port the first time)."""
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Close every connection and the listener, and end the loop's thread."""
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CONTROL_TIMEOUT_S)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- controls ---------------------------------------------------------------------------

    def add_latency(self, seconds: float) -> None:
        """Deliver every chunk, in both directions, ``seconds`` after it was read."""
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        self.latency_s = seconds

    def cut(self) -> int:
        """Close every open connection at once; the number closed."""
        return self._call(self._cut())

    def refuse(self) -> None:
        """Stop listening, so new connections are refused (open ones are left alone)."""
        self._call(self._unlisten())

    def restore(self) -> None:
        """No latency, and listening again (on the same port) if refusing."""
        self.latency_s = 0.0
        self._call(self._listen())

    @property
    def open_connections(self) -> int:
        """Connections being forwarded now."""
        return len(self._links)

    # -- in the loop's thread ---------------------------------------------------------------

    def _call(self, job: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(job, self._loop)
        try:
            return future.result(_CONTROL_TIMEOUT_S)
        except TimeoutError:
            raise InternalError("the TCP proxy did not answer a control in time") from None

    async def _listen(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, sock=sock)

    async def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await _bounded(server.wait_closed())

    async def _cut(self) -> int:
        writers = list(self._writers)
        for writer in writers:
            transport = writer.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        links = list(self._links)
        if links:  # each ends once its reads see the aborted connections
            await asyncio.wait(links, timeout=_CONTROL_TIMEOUT_S)
        return len(links)

    async def _shutdown(self) -> None:
        await self._unlisten()
        await self._cut()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:  # nothing may be left suspended when the loop stops
            task.cancel()
        await _bounded(asyncio.gather(*rest, return_exceptions=True))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection(*self.target)
            self._writers.add(upstream)
            await asyncio.gather(self._pipe(reader, upstream), self._pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the connection's end (a cancel at shutdown too: nothing to report)
        finally:
            self._links.discard(task)
            for end in (writer, upstream):
                if end is not None:
                    self._writers.discard(end)
                    end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer``, each chunk delivered ``latency_s`` after its read."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._deliver(queue, writer))
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(_CHUNK):
                queue.put_nowait((loop.time() + self.latency_s, data))
            queue.put_nowait((loop.time() + self.latency_s, b""))
            await sender
        finally:
            sender.cancel()

    async def _deliver(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the wire's delay, not a test waiting
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()


async def _bounded(job: Awaitable[Any]) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(job, _CONTROL_TIMEOUT_S)
