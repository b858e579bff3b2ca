"""Fixtures of the fault suite: real processes, real faults, no mocks.

What a fault module usually needs:

* ``fault_data`` (session): a small marketplace whose event log ends now (so the
  features the service reads are fresh), a registry directory with a model trained
  on it (alias ``production``), and ``/v1/eta`` bodies of its latest orders;
* ``redis`` and ``redis_proxy`` (module): a throw-away ``redis-server`` filled with
  the marketplace's features, and a :class:`~arrive.testing.servers.tcp_proxy.TcpProxy` in
  front of it (latency, cuts, refusals);
* ``start_service(env)``: ``arrive serve`` as a child process with the fault suite's
  settings (LightGBM only, quick store checks) plus ``env``, stopped at the end of
  the test (or of the module, with ``scope="module"``);
* ``service_on_redis`` (module): a running service reading the store through the
  proxy; ``healthy_service`` gives it back to each test with every fault undone.

The :class:`~arrive.testing.servers.eta_service.ServiceProbe` helper answers requests, reads
``/metrics`` as numbers and polls for a condition with a bounded deadline (never a
fixed sleep).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from arrive.testing.servers.eta_service import ServeProcess, ServiceProbe, fill_redis, order_body
from arrive.testing.servers.redis_server import RedisServer
from arrive.testing.servers.tcp_proxy import TcpProxy
from arrive.testing.trained import production_model

BASE_ENV = {
    "ARRIVE_COMPILE_BACKEND": "none",
    "ARRIVE_RELOAD_INTERVAL_S": "0",
    "ARRIVE_STORE_CHECK_INTERVAL_S": "0.1",
    "ARRIVE_MAX_FEATURE_LAG_S": "86400",
    "ARRIVE_DEADLINE_MS": "500",
    "ARRIVE_STORE_TIMEOUT_MS": "2000",
    "ARRIVE_LOG_LEVEL": "warning",
}


@dataclass(frozen=True)
class FaultData:
    """The marketplace, its model and the bodies of its latest orders."""

    data_dir: Path
    registry_dir: Path
    orders: list[dict[str, Any]]


@pytest.fixture(scope="session")
def fault_data(tmp_path_factory: pytest.TempPathFactory) -> FaultData:
    made = production_model(
        tmp_path_factory.mktemp("faults"),
        seed=3,
        n_orders=800,
        reason="fault suite",
        model_params={"n_estimators": 60, "early_stopping_rounds": 1000, "num_leaves": 15},
    )
    latest = made.market.orders.sort("created_at").tail(30)
    bodies = [order_body(r) for r in latest.iter_rows(named=True)]
    return FaultData(made.data_dir, made.registry_dir, bodies)


@pytest.fixture
def refill(fault_data: FaultData) -> Callable[[RedisServer], object]:
    """``refill(server)``: the marketplace's features written into ``server`` again."""
    return lambda server: fill_redis(server.url, fault_data.data_dir)


@pytest.fixture(scope="module")
def redis(fault_data: FaultData) -> Iterator[RedisServer]:
    """A filled redis-server for the module (tests that stop it start it again)."""
    server = RedisServer()
    server.start()
    try:
        fill_redis(server.url, fault_data.data_dir)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_proxy(redis: RedisServer) -> Iterator[TcpProxy]:
    """A TCP proxy in front of :func:`redis`."""
    with TcpProxy("127.0.0.1", redis.port) as proxy:
        yield proxy


StartServiceProbe = Callable[..., ServiceProbe]


def _starter(
    request: pytest.FixtureRequest, fault_data: FaultData, tmp: Path
) -> Callable[..., ServiceProbe]:
    def start(
        env: dict[str, str] | None = None, workers: int = 1, args: tuple[str, ...] = ()
    ) -> ServiceProbe:
        name = f"serve-{len(list(tmp.glob('serve-*.log')))}"
        settings = {
            **BASE_ENV,
            "ARRIVE_REGISTRY_DIR": str(fault_data.registry_dir),
            "ARRIVE_PREDICTION_LOG_DIR": str(tmp / f"{name}-predictions"),
            "ARRIVE_COMPILE_CACHE_DIR": str(tmp / "compiled"),
            **(env or {}),
        }
        process = ServeProcess(settings, workers=workers, args=args, log_path=tmp / f"{name}.log")
        request.addfinalizer(process.stop)
        process.start()
        process.wait_ready(timeout_s=180)
        return ServiceProbe(process.url, process)

    return start


@pytest.fixture
def start_service(
    request: pytest.FixtureRequest, fault_data: FaultData, tmp_path: Path
) -> StartServiceProbe:
    """``start_service(env=None, workers=1, args=()) -> ServiceProbe``, ready; stopped after
    the test (``args``: more ``arrive serve`` options, e.g. ``--config FILE``)."""
    return _starter(request, fault_data, tmp_path)


@pytest.fixture(scope="module")
def start_module_service(
    request: pytest.FixtureRequest,
    fault_data: FaultData,
    tmp_path_factory: pytest.TempPathFactory,
) -> StartServiceProbe:
    """As :func:`start_service`, stopped after the module."""
    return _starter(request, fault_data, tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="module")
def service_on_redis(
    start_module_service: StartServiceProbe, redis_proxy: TcpProxy, redis: RedisServer
) -> ServiceProbe:
    """A service whose feature store is :func:`redis` behind :func:`redis_proxy`."""
    url = f"redis://127.0.0.1:{redis_proxy.port}/0"
    return start_module_service({"ARRIVE_STORE_URL": url})


@pytest.fixture
def healthy_service(
    service_on_redis: ServiceProbe, redis: RedisServer, redis_proxy: TcpProxy, fault_data: FaultData
) -> ServiceProbe:
    """:func:`service_on_redis` with every fault of an earlier test undone: the proxy
    restored, Redis running and filled, and the model answering."""
    redis_proxy.restore()
    if not _pong(redis):
        redis.resume()
    service = service_on_redis
    probe = fault_data.orders[0]
    service.wait(lambda: service.health()["store"] == "up", "the store to be up")
    service.wait(lambda: service.answers_with_model(probe), "the model to answer")
    return service


def _pong(redis: RedisServer) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", redis.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
