"""Slow and huge requests against a real ``arrive serve``, over raw sockets: every one
gets a clear answer (431, 408 or 503) or, idle, a closed connection, within its limit,
instead of holding the connection and its buffers forever."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import pytest

from arrive.testing.servers.eta_service import ServiceProbe

pytestmark = pytest.mark.faults

TIMEOUT_S: Final = 2.0
LIMITS: Final = {
    "ARRIVE_MAX_HEADER_BYTES": "4096",
    "ARRIVE_MAX_HEADERS": "20",
    "ARRIVE_HEADER_TIMEOUT_S": str(TIMEOUT_S),
    "ARRIVE_BODY_TIMEOUT_S": str(TIMEOUT_S),
    "ARRIVE_KEEP_ALIVE_TIMEOUT_S": str(TIMEOUT_S),
    "ARRIVE_MAX_CONNECTIONS": "8",
}
WAIT_S: Final = 30.0
"""How long a test waits for the server's answer before failing (a bound, not a pace)."""
HEAD: Final = b"POST /v1/eta HTTP/1.1\r\nhost: eta\r\ncontent-type: application/json\r\n"


@pytest.fixture(scope="module")
def service(start_module_service: Any) -> ServiceProbe:
    """A service with small limits (and the in-process store: no feature is needed)."""
    client: ServiceProbe = start_module_service(LIMITS)
    return client


@contextmanager
def connection(service: ServiceProbe) -> Iterator[socket.socket]:
    assert service.process is not None
    with socket.create_connection(("127.0.0.1", service.process.port), timeout=WAIT_S) as sock:
        yield sock


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:  # closed with our unread bytes in its buffer
        pass
    return received


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def request(body: bytes, extra: bytes = b"") -> bytes:
    return HEAD + extra + b"content-length: %d\r\n\r\n" % len(body) + body


def test_a_huge_header_is_refused_with_431_before_it_is_read_whole(service: ServiceProbe) -> None:
    before = service.metric("arrive_connections_refused_total", reason="header_bytes")
    with connection(service) as sock:
        sock.sendall(HEAD + b"x-big: " + b"a" * 8192)  # past the limit, the header not ended
        answer = until_closed(sock)
    counted = service.metric("arrive_connections_refused_total", reason="header_bytes") - before
    assert status(answer) == 431
    assert b"exceed 4096 bytes" in answer
    assert counted == 1


def test_a_megabyte_of_headers_is_refused_and_the_service_keeps_answering(
    service: ServiceProbe,
) -> None:
    with connection(service) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused mid-send
            sock.sendall(HEAD + b"x-big: " + b"a" * 1_048_576 + b"\r\n\r\n")
        answer = until_closed(sock)
    assert status(answer) in (431, 0)
    assert service.health()["status"] in ("ok", "degraded")


def test_too_many_header_lines_are_refused_with_431(service: ServiceProbe) -> None:
    lines = b"".join(b"x-%d: 1\r\n" % i for i in range(50))
    with connection(service) as sock:
        sock.sendall(request(b"{}", lines))
        answer = until_closed(sock)
    assert status(answer) == 431
    assert b"more than 20 header lines" in answer


def test_headers_that_never_end_get_408(service: ServiceProbe) -> None:
    with connection(service) as sock:
        sock.sendall(HEAD)
        answer = until_closed(sock)
    assert status(answer) == 408
    assert b"headers took over 2 s" in answer


def test_trickled_headers_do_not_extend_the_header_timeout(service: ServiceProbe) -> None:
    """A byte now and then: the timeout counts from the request's first byte."""
    header = b"x-slow: " + b"a" * 2000  # within the size limit
    answer = b""
    with connection(service) as sock:
        sock.sendall(HEAD)
        sock.settimeout(0.1)  # the pace of the trickle: one byte per wait for an answer
        for byte in header:
            sock.sendall(bytes([byte]))
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            break
    assert status(answer) == 408  # long before the 2,000 bytes (200 s at this pace)


def test_a_body_shorter_than_its_content_length_gets_408(service: ServiceProbe) -> None:
    with connection(service) as sock:
        sock.sendall(HEAD + b'content-length: 100\r\n\r\n{"order_id":')
        answer = until_closed(sock)
    assert status(answer) == 408
    assert b"body took over 2 s" in answer


def test_an_idle_connection_is_closed(service: ServiceProbe) -> None:
    with connection(service) as sock:
        assert until_closed(sock) == b""  # nothing asked, nothing answered: closed


def test_keep_alive_and_pipelining_work_within_the_limits(
    service: ServiceProbe, fault_data: Any
) -> None:
    import json

    body = json.dumps(fault_data.orders[0]).encode()
    with connection(service) as sock:
        sock.sendall(request(body) + request(body))  # two requests in one write
        answers = b""
        while answers.count(b"HTTP/1.1 200 OK") < 2:
            answers += sock.recv(65536)
        sock.sendall(request(body))  # the same connection, kept alive
        third = sock.recv(65536)
        rest = until_closed(sock)  # then idle: closed after the keep-alive timeout
    assert status(third) == 200
    assert rest == b""


def test_connections_past_the_cap_get_503(service: ServiceProbe) -> None:
    assert service.process is not None
    address = ("127.0.0.1", service.process.port)
    held = [socket.create_connection(address, timeout=WAIT_S) for _ in range(8)]
    try:
        with socket.create_connection(address, timeout=WAIT_S) as extra:
            answer = until_closed(extra)
    finally:
        for sock in held:
            sock.close()
    assert status(answer) == 503
    assert b"more than 8 open connections" in answer


def test_a_large_body_read_with_its_headers_is_not_taken_for_large_headers(
    service: ServiceProbe, fault_data: Any
) -> None:
    import json

    order = {**fault_data.orders[0], "attributes": {"note": "a" * 6000}}
    with connection(service) as sock:
        sock.sendall(request(json.dumps(order).encode()))  # one write: head, then 6 KB
        answer = sock.recv(65536)
    assert status(answer) in (200, 422)  # answered by the app, not refused as headers
