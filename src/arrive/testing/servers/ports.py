"""Free loopback ports for the servers tests start, and whether a server there answers."""

from __future__ import annotations

import random
import socket
import urllib.error
import urllib.request


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (another process may take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


CLUSTER_BUS_OFFSET = 10_000
"""A Redis Cluster node also listens on its port + 10,000 (the cluster bus), so its
own port must be 55,535 at most."""


def free_cluster_port(
    host: str = "127.0.0.1", attempts: int = 200, rng: random.Random | None = None
) -> int:
    """A port free on ``host`` whose cluster-bus port (+10,000) is free too.

    The kernel's ephemeral range (32768–60999 on Linux) reaches above 55,535, where
    a Redis Cluster node refuses to start, so the port is drawn from 20,000–45,535
    instead, and both it and its bus port are bound once to check they are free.
    """
    draw = rng or random.Random()
    for _ in range(attempts):
        port = draw.randint(20_000, 45_535)
        if _bindable(host, port) and _bindable(host, port + CLUSTER_BUS_OFFSET):
            return port
    raise OSError(f"no free port pair (port, port + {CLUSTER_BUS_OFFSET}) on {host}")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def answers_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET url`` answers 200 (a readiness probe); False when it answers
    otherwise or cannot be reached yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False
