"""One pipelined connection to Redis for the service's reads.

redis-py's asyncio client takes a pooled connection for each command, writes it and
waits for its reply: its client code costs more per MGET than the rest of a request
(docs/benchmarks.md) and every command is a socket write of its own. The service's
reads are independent and come from many requests at once, so here they share one
connection: the commands of one event-loop turn go out in a single write, hiredis
parses the replies, and each caller's future gets its reply in order.

Failures: a refused or lost connection, or a reply later than ``socket_timeout_s``,
closes the connection and fails every waiting command with
:class:`~arrive.errors.FeatureStoreUnavailable`; the next command reconnects
(bounded by ``connect_timeout_s``). An error reply fails only its own command:
:class:`~arrive.errors.StoreError`, or ``FeatureStoreUnavailable`` for the replies
of a server that cannot serve right now (loading, read-only replica, out of memory).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

import hiredis
from redis.connection import parse_url

from arrive.errors import FeatureStoreUnavailable, StoreError
from arrive.joined_writes import JoinedWrites

Arg = str | bytes | int | float
_NOT_NOW: Final = (
    *("LOADING", "READONLY", "OOM", "MASTERDOWN", "NOAUTH", "WRONGPASS"),
    *("CLUSTERDOWN", "TRYAGAIN"),  # a Redis Cluster failing over or resharding
)


class Redirect(StoreError):
    """A Redis Cluster node's ``MOVED`` or ``ASK`` reply: the key's slot is served
    elsewhere (for good, or, with ``ask``, for this one command during a migration).

    Attributes:
        ask: True for ``ASK`` (send ``ASKING`` first, keep the slot map), False for ``MOVED``.
        slot: the key's hash slot.
        node: ``host:port`` of the node to ask.
    """

    def __init__(self, message: str, where: str) -> None:
        super().__init__(f"redis at {where} redirected a command: {message}")
        kind, slot, node = message.split(" ", 2)
        self.ask = kind == "ASK"
        self.slot = int(slot)
        self.node = node


class PipelinedRedis:
    """Commands over one shared, pipelined connection, opened on first use.

    Use it from one event loop (the one of its first call).

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://…`` or ``unix://…``.
        where: the server as named in error messages (no credentials).
        socket_timeout_s: the longest wait for a reply.
        connect_timeout_s: the longest wait for a connection (and its AUTH and SELECT).
    """

    def __init__(
        self, url: str, *, where: str, socket_timeout_s: float, connect_timeout_s: float
    ) -> None:
        self._params: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        self._tls = url.startswith("rediss:")
        self.where = where
        self._timeout_s = socket_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._replies: _Replies | None = None
        self._opening: asyncio.Future[_Replies] | None = None

    async def execute(self, *args: Arg) -> Any:
        """The reply to the command ``args`` (bulk strings as bytes).

        Raises:
            FeatureStoreUnavailable: no connection, or no reply in time.
            StoreError: Redis answered with an error.
        """
        replies = self._replies
        if replies is None or replies.closed:
            replies = await self._connection()
        return await replies.send(_pack(args))

    async def send_many(self, commands: Sequence[tuple[Arg, ...]]) -> list[asyncio.Future[Any]]:
        """Send ``commands`` back to back on the connection (``ASKING`` and the command it
        allows stay adjacent) and return at once with a future per reply (without
        suspending when the connection is open). A future fails as :meth:`execute` would
        raise; the caller awaits or retrieves each.

        Raises:
            FeatureStoreUnavailable: no connection.
        """
        replies = self._replies
        if replies is None or replies.closed:
            replies = await self._connection()
        return [replies.send(_pack(command)) for command in commands]

    async def aclose(self) -> None:
        """Closes the connection; waiting commands fail."""
        if self._opening is not None:
            self._opening.cancel()
        replies, self._replies = self._replies, None
        if replies is not None:
            replies.close(FeatureStoreUnavailable(f"redis at {self.where}: closed"))
            await replies.lost  # the socket is closed once this is done

    async def _connection(self) -> _Replies:
        if self._opening is None:  # callers arriving meanwhile share this attempt
            self._opening = asyncio.ensure_future(self._open())
            self._opening.add_done_callback(self._opened)
        return await asyncio.shield(self._opening)

    def _opened(self, opening: asyncio.Future[_Replies]) -> None:
        self._opening = None
        if not opening.cancelled() and opening.exception() is None:
            self._replies = opening.result()

    async def _open(self) -> _Replies:
        loop = asyncio.get_running_loop()
        params = self._params

        def protocol() -> _Replies:
            return _Replies(loop, self.where, self._timeout_s)

        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if "path" in params:
                    _, replies = await loop.create_unix_connection(protocol, params["path"])
                else:
                    host, port = params.get("host", "localhost"), params.get("port", 6379)
                    tls = _tls_context(params) if self._tls else None
                    _, replies = await loop.create_connection(protocol, host, port, ssl=tls)
                await self._hello(replies)
        except (OSError, TimeoutError) as exc:
            raise FeatureStoreUnavailable(
                f"redis at {self.where} is unavailable: {exc or 'connect timed out'}"
            ) from exc
        return replies

    async def _hello(self, replies: _Replies) -> None:
        params = self._params
        try:
            if params.get("password"):
                user = [params["username"]] if params.get("username") else []
                await replies.send(_pack(("AUTH", *user, params["password"])))
            if params.get("db"):
                await replies.send(_pack(("SELECT", params["db"])))
        except StoreError:
            replies.close(FeatureStoreUnavailable(f"redis at {self.where}: closed"))
            raise


def _pack(args: tuple[Arg, ...]) -> bytes:
    """``args`` as a RESP command (hiredis' stub types its argument as a 1-tuple)."""
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]
    return packed


def _tls_context(params: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=params.get("ssl_ca_certs"))
    if params.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Replies(asyncio.Protocol):
    """The connection's protocol: queues commands, writes them once per loop turn, and
    hands each reply to the oldest waiting future."""

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str, timeout_s: float) -> None:
        self._loop = loop
        self._where = where
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader()
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._transport: JoinedWrites | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.lost: asyncio.Future[None] = loop.create_future()

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.closed:
            raise FeatureStoreUnavailable(f"redis at {self._where}: connection closed")
        loop = self._loop
        reply: asyncio.Future[Any] = loop.create_future()
        deadline = loop.time() + self._timeout_s
        self._waiting.append((reply, deadline))
        if self._transport is not None:
            self._transport.write(command)
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._check_late)
        return reply

    def close(self, error: Exception) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._transport.abort()
        while self._waiting:
            reply, _ = self._waiting.popleft()
            if not reply.done():
                reply.set_exception(error)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = JoinedWrites(transport, self._loop)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self.close(FeatureStoreUnavailable(f"redis at {self._where}: connection lost{reason}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            while (answer := reader.gets()) is not False:
                if not self._waiting:
                    raise hiredis.ProtocolError("a reply nobody asked for")
                reply, _ = self._waiting.popleft()
                if reply.done():  # its caller gave up waiting
                    continue
                if isinstance(answer, hiredis.ReplyError):
                    reply.set_exception(self._error(str(answer)))
                else:
                    reply.set_result(answer)
        except hiredis.ProtocolError as exc:
            self.close(FeatureStoreUnavailable(f"redis at {self._where}: bad reply: {exc}"))

    def _check_late(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        deadline = self._waiting[0][1]
        if self._loop.time() >= deadline:
            late = f"no reply within {self._timeout_s * 1000:g} ms"
            self.close(FeatureStoreUnavailable(f"redis at {self._where}: {late}"))
        else:
            self._timer = self._loop.call_at(deadline, self._check_late)

    def _error(self, message: str) -> StoreError:
        if message.startswith(("MOVED ", "ASK ")):
            return Redirect(message, self._where)
        if message.startswith(_NOT_NOW):
            return FeatureStoreUnavailable(f"redis at {self._where} is unavailable: {message}")
        return StoreError(f"redis at {self._where} refused a command: {message}")
