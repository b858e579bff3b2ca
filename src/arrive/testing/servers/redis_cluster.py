"""A throw-away Redis Cluster: three ``redis-server --cluster-enabled yes`` primaries on
free loopback ports, joined by ``redis-cli --cluster create``, for tests and benchmarks::

    with RedisClusterServer() as cluster:
        store = open_store(cluster.url, "test")  # redis+cluster://…: a RedisClusterStore

No replicas: a killed node's slots are unserved until it returns (:meth:`kill_node`,
:meth:`restart_node`; it comes back under its old identity, empty). Slots move with
:meth:`reshard` (``redis-cli --cluster reshard``, keys and all) or step by step
(:meth:`begin_migration`, :meth:`migrate_keys`, :meth:`finish_migration`), to hold a
slot half migrated while a client reads it (ASK redirects).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Final

import redis

from arrive.errors import InternalError
from arrive.testing.servers.ports import free_cluster_port
from arrive.testing.servers.redis_server import RedisServer

_HOST: Final = "127.0.0.1"
NODE_TIMEOUT_MS: Final = 1000
"""``cluster-node-timeout``: how long before the others mark a silent node failed."""


class RedisClusterServer:
    """``size`` cluster primaries owned by this object.

    Args:
        size: primaries (3 at least: Redis needs a majority to agree).
        startup_timeout_s: how long to wait for each node and for the cluster state.

    Raises:
        InternalError: (from :meth:`start`) ``redis-server`` or ``redis-cli`` is
            missing, or the cluster does not form; the message says what failed.
    """

    def __init__(self, size: int = 3, startup_timeout_s: float = 20.0) -> None:
        if size < 3:
            raise InternalError(f"a Redis Cluster needs 3 primaries at least, not {size}")
        self.startup_timeout_s = startup_timeout_s
        self.nodes = [
            RedisServer(
                startup_timeout_s=startup_timeout_s,
                extra_args=_cluster_args(),
                pick_port=free_cluster_port,
            )
            for _ in range(size)
        ]
        self._ids: list[str] = []

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:{port},…``: every node, as startup nodes."""
        return "redis+cluster://" + ",".join(f"{_HOST}:{n.port}" for n in self.nodes)

    def start(self) -> None:
        """Start the nodes, create the cluster, return once every node says ``cluster_state:ok``."""
        cli = shutil.which("redis-cli")
        if cli is None:
            raise InternalError(
                "redis-cli is not on PATH: install it (apt-get install redis-tools)"
            )
        try:
            for node in self.nodes:
                node.start()
            _run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"{_HOST}:{n.port}" for n in self.nodes),
                    "--cluster-yes",
                ],
                "redis-cli --cluster create",
            )
            self._ids = [self._my_id(i) for i in range(len(self.nodes))]
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node and remove its directory."""
        for node in self.nodes:
            node.stop()

    def node_id(self, index: int) -> str:
        """The cluster id of node ``index``."""
        return self._ids[index]

    def admin(self, index: int) -> redis.Redis:
        """A plain client of node ``index`` (admin commands; the caller closes it)."""
        return redis.Redis(host=_HOST, port=self.nodes[index].port, socket_timeout=5.0)

    def owner(self, slot: int) -> int:
        """The index of the node serving ``slot``, as node 0 sees it (or the first live one)."""
        for index, node in enumerate(self.nodes):
            if node.running:
                with self.admin(index) as client:
                    for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                        if start <= slot <= end:
                            return self._index_of_port(int(primary[1]))
        raise InternalError(f"no node serves slot {slot}")

    def wait_ok(self) -> None:
        """Return once every running node says ``cluster_state:ok`` and agrees on the slots."""
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._all_ok():
                return
            time.sleep(0.05)
        raise InternalError(
            f"the cluster did not reach cluster_state:ok in {self.startup_timeout_s} s"
        )

    def kill_node(self, index: int) -> None:
        """Kill node ``index`` (SIGKILL), keeping its directory and identity."""
        self.nodes[index].kill()

    def restart_node(self, index: int) -> None:
        """Start a killed node again on its port (empty: no persistence); return once the
        cluster is ok again."""
        node = self.nodes[index]
        node.start(node.port)
        self.wait_ok()

    def reshard(self, source: int, target: int, slots: int) -> None:
        """Move ``slots`` slots, keys and all, from node ``source`` to node ``target`` with
        ``redis-cli --cluster reshard`` (readers meanwhile see MOVED and ASK)."""
        cli = shutil.which("redis-cli") or "redis-cli"
        _run(
            [
                cli,
                "--cluster",
                "reshard",
                f"{_HOST}:{self.nodes[source].port}",
                *("--cluster-from", self.node_id(source)),
                *("--cluster-to", self.node_id(target)),
                *("--cluster-slots", str(slots)),
                "--cluster-yes",
            ],
            "redis-cli --cluster reshard",
        )

    def begin_migration(self, slot: int, target: int) -> None:
        """Mark ``slot`` importing on node ``target`` and migrating on its owner."""
        source = self.owner(slot)
        with self.admin(target) as dst, self.admin(source) as src:
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", self.node_id(source))
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", self.node_id(target))

    def migrate_keys(self, slot: int, target: int, keys: Sequence[str | bytes]) -> None:
        """Move ``keys`` (of the migrating ``slot``) from its owner to node ``target``."""
        if keys:
            with self.admin(self.owner(slot)) as src:
                port = self.nodes[target].port
                src.execute_command("MIGRATE", _HOST, port, "", 0, 5000, "KEYS", *keys)

    def finish_migration(self, slot: int, target: int) -> None:
        """Move the rest of ``slot``'s keys to ``target`` and assign it there on every node."""
        while True:
            with self.admin(self.owner(slot)) as src:
                keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            self.migrate_keys(slot, target, keys)
        for index, node in enumerate(self.nodes):
            if node.running:
                with self.admin(index) as client:
                    client.execute_command("CLUSTER SETSLOT", slot, "NODE", self.node_id(target))

    def slots_of(self, index: int) -> set[int]:
        """The slots node ``index`` serves, as it sees it."""
        port = self.nodes[index].port
        with self.admin(index) as client:
            ranges = client.execute_command("CLUSTER SLOTS")
        return {
            slot
            for start, end, primary, *_ in ranges
            if int(primary[1]) == port
            for slot in range(start, end + 1)
        }

    def __enter__(self) -> RedisClusterServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _my_id(self, index: int) -> str:
        with self.admin(index) as client:
            return str(client.execute_command("CLUSTER MYID").decode())

    def _index_of_port(self, port: int) -> int:
        for index, node in enumerate(self.nodes):
            if node.port == port:
                return index
        raise InternalError(f"no node of this cluster listens on port {port}")

    def _all_ok(self) -> bool:
        seen = set()
        for index, node in enumerate(self.nodes):
            if not node.running:
                continue
            try:
                with self.admin(index) as client:
                    info = client.execute_command("CLUSTER INFO")
                    slots = client.execute_command("CLUSTER SLOTS")
            except redis.RedisError:
                return False
            if info.get("cluster_state") != "ok":
                return False
            seen.add(tuple(sorted((s, e, int(p[1])) for s, e, p, *_ in slots)))
        return len(seen) == 1


def _cluster_args() -> tuple[str, ...]:
    return (
        *("--cluster-enabled", "yes"),
        *("--cluster-config-file", "nodes.conf"),
        *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
    )


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise InternalError(
            f"{what} failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-500:]}"
        )
