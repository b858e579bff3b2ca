"""The listener a worker unpickles before it can answer its supervisor imports nothing heavy."""

from __future__ import annotations

import pickle
import subprocess
import sys

from arrive.sockets import ReusePortListener
from arrive.testing.servers.ports import free_port

_CHILD = """
import pickle, sys
sock = pickle.loads(sys.stdin.buffer.read())
heavy = ("lightgbm", "polars", "numpy", "starlette", "arrive.serving")
print(type(sock).__name__, sock.getsockname()[1], *sorted(m for m in heavy if m in sys.modules))
sock.close()
"""


def test_unpickling_the_listener_binds_a_socket_and_imports_no_heavy_module() -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=pickle.dumps(ReusePortListener("127.0.0.1", port)),
        capture_output=True,
        timeout=60,
        check=True,
    )
    # a worker answers uvicorn's liveness ping only once its sockets are unpickled: were
    # the app imported here (seconds, tens on a busy host) the supervisor killed it
    assert done.stdout.decode().split() == ["socket", str(port)]
