"""The writes of one event-loop turn go out as one write (HTTP answers, Redis commands)."""

from __future__ import annotations

import asyncio
from typing import Any

from arrive.joined_writes import JoinedWrites


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def test_the_writes_of_one_turn_go_out_together_at_its_end() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes]]:
        raw = _Transport()
        joined = JoinedWrites(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
        joined.write(b"{}")
        during = list(raw.writes)
        await asyncio.sleep(0)  # the turn ends
        joined.write(b"next")
        await asyncio.sleep(0)
        return during, raw.writes

    during, after = asyncio.run(scenario())
    assert during == []
    assert after == [b"HTTP/1.1 200 OK\r\n\r\n{}", b"next"]


def test_close_writes_what_is_pending_first_and_the_rest_is_the_transport() -> None:
    async def scenario() -> tuple[_Transport, Any]:
        raw = _Transport()
        joined = JoinedWrites(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        joined.write(b"bye")
        joined.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left
        return raw, joined.get_extra_info("peername")

    raw, peer = asyncio.run(scenario())
    assert raw.writes == [b"bye"]
    assert raw.closed
    assert peer == ("127.0.0.1", 1)
