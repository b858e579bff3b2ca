"""A model file that passes its checksum but crashes LightGBM: ``arrive serve`` as a real
process stays up, serves the newest intact version (or the heuristic) and says so, and an
admin reload on two workers kills neither.

Each broken booster is a real LightGBM file, cut short or with a split reading a feature
far out of range (LightGBM segfaults on it), with the index re-signed, as a buggy exporter
or a partial copy followed by a re-index leaves it.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import polars as pl
import pytest

from arrive.registry import LocalRegistry
from arrive.testing.artifacts import out_of_range_split, resign, truncated
from arrive.testing.servers.eta_service import ServeProcess, order_body, wait_for

pytestmark = pytest.mark.faults

BOOSTER = "booster_q90.txt"
TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START_S = 600.0
"""Bound on a start or a reload: each model check is a child process (slow on a busy machine)."""
_STOPPED = (0, -signal.SIGTERM)
"""Exit codes of a graceful stop: a single-worker uvicorn re-raises the SIGTERM it handled."""


@pytest.fixture
def orders(trained: Any) -> list[dict[str, Any]]:
    table: pl.DataFrame = trained.market.orders.sort("created_at").tail(10)
    return [order_body(row) for row in table.iter_rows(named=True)]


def _registry(trained: Any, root: Path, versions: int, alias: str) -> LocalRegistry:
    registry = LocalRegistry(root)
    for _ in range(versions):
        registry.register(dict(trained.files), dict(trained.metadata))
    registry.set_alias("production", alias, reason="test")
    return registry


def _break(registry: LocalRegistry, version: str, damage: Callable[[bytes], bytes]) -> None:
    resign(registry.root, version, BOOSTER, damage(registry.read_file(version, BOOSTER)))
    registry.open(version)  # every checksum passes


def _cut(data: bytes) -> bytes:
    return truncated(data, 0.98)


def _service(trained: Any, registry: LocalRegistry, tmp_path: Path, workers: int) -> ServeProcess:
    env = {
        "ARRIVE_REGISTRY_DIR": str(registry.root),
        "ARRIVE_REPLAY_DIR": str(trained.data_dir),
        "ARRIVE_COMPILE_BACKEND": "none",
        "ARRIVE_PREDICTION_LOG_DIR": str(tmp_path / "predictions"),
        "ARRIVE_RELOAD_INTERVAL_S": "0",
        "ARRIVE_LOG_LEVEL": "warning",
        "ARRIVE_ADMIN_TOKEN": TOKEN,
    }
    return ServeProcess(env, workers=workers, log_path=tmp_path / "serve.log")


def _answer(url: str, order: dict[str, Any]) -> dict[str, Any]:
    """The answer to ``order`` on a new connection (so the calls spread over the workers)."""
    answer: dict[str, Any] = httpx2.post(f"{url}/v1/eta", json=order, timeout=30.0).json()
    return answer


def _metric(url: str, name: str) -> float:
    text = httpx2.get(f"{url}/metrics", timeout=30.0).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return 0.0 if found is None else float(found.group(1))


def _answering(url: str) -> bool:
    try:
        httpx2.get(f"{url}/readyz", timeout=5.0)
    except httpx2.HTTPError:
        return False
    return True


def _children(pid: int) -> set[int]:
    """The process ids of ``pid``'s children (the supervisor's: its workers)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(child) for child in text.split()}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_serve_skips_a_newest_version_that_crashes_lightgbm(
    trained: Any, tmp_path: Path, orders: list[dict[str, Any]]
) -> None:
    registry = _registry(trained, tmp_path / "registry", versions=2, alias="2")
    _break(registry, "2", out_of_range_split)
    with _service(trained, registry, tmp_path, workers=1) as service:
        service.wait_ready(START_S)
        ready = httpx2.get(f"{service.url}/readyz", timeout=30.0).json()
        answers = [_answer(service.url, order) for order in orders]
        degraded = _metric(service.url, "arrive_model_degraded")
        code = service.stop()
    assert ready["ready"] is True
    assert ready["reason"].startswith(
        "serving version 1 instead of production version 2, which was refused: "
    )
    assert "crashed the check process (SIGSEGV)" in ready["reason"]
    assert {(a["model_version"], a["fallback"]) for a in answers} == {("1", None)}
    assert degraded == 1.0
    assert code in _STOPPED, service.log()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_serve_with_only_a_broken_version_answers_from_its_intact_heuristic(
    trained: Any, tmp_path: Path, orders: list[dict[str, Any]]
) -> None:
    registry = _registry(trained, tmp_path / "registry", versions=1, alias="1")
    _break(registry, "1", _cut)
    with _service(trained, registry, tmp_path, workers=1) as service:
        service.wait_ready(START_S)  # the heuristic can answer: ready once the replay is done
        ready = httpx2.get(f"{service.url}/readyz", timeout=30.0)
        health = httpx2.get(f"{service.url}/healthz", timeout=30.0).json()
        answers = [_answer(service.url, order) for order in orders]
        code = service.stop()
    # the version's heuristic answers, so the replica stays in rotation; /healthz says why
    assert ready.status_code == 200
    assert health["status"] == "degraded"
    (problem,) = [p for p in health["problems"] if p.startswith("no model serves")]
    assert problem.startswith("no model serves (version 1 refused: ")
    assert f"{BOOSTER}: incomplete" in problem
    assert {(a["model_version"], a["fallback"]) for a in answers} == {(None, "no_model")}
    # the version's heuristic answers, not the constants used when there is none
    defaults = (2700.0, 3600.0)
    assert all((a["p50_s"], a["p90_s"]) != defaults for a in answers)
    assert code in _STOPPED, service.log()


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_admin_reload_onto_broken_files_kills_no_worker_and_says_what_it_found(
    trained: Any, tmp_path: Path, orders: list[dict[str, Any]]
) -> None:
    registry = _registry(trained, tmp_path / "registry", versions=1, alias="1")
    broken = 'arrive_model_checks_total{outcome="broken"}'
    with _service(trained, registry, tmp_path, workers=2) as service:
        service.wait_ready(START_S)
        assert service.proc is not None
        wait_for(lambda: len(_children(service.proc.pid)) >= 2, START_S, "two workers")
        workers = _children(service.proc.pid)
        # the version serving breaks on disk; the alias does not move
        _break(registry, "1", _cut)
        same = httpx2.post(f"{service.url}/admin/reload", headers=AUTH, timeout=START_S)
        wait_for(lambda: _metric(service.url, broken) >= 2, START_S, "both workers checked")
        ready = httpx2.get(f"{service.url}/readyz", timeout=30.0).json()
        # a new version that segfaults LightGBM becomes production
        registry.register(dict(trained.files), dict(trained.metadata))
        _break(registry, "2", out_of_range_split)
        registry.set_alias("production", "2", reason="test: a broken export")
        moved = httpx2.post(f"{service.url}/admin/reload", headers=AUTH, timeout=START_S)
        wait_for(lambda: _metric(service.url, broken) >= 6, START_S, "both workers checked")
        answers = [_answer(service.url, order) for order in orders]
        after = _children(service.proc.pid)
        code = service.stop()
    assert after == workers, service.log()  # no worker died and none was replaced
    assert same.status_code == 409
    assert same.json()["message"].startswith(
        "reload refused: version 1 refused (ModelIntegrityError: version 1"
    )
    assert f"{BOOSTER}: incomplete" in same.json()["message"]
    assert same.json()["message"].endswith(
        "version 1 keeps serving from the copy loaded earlier (a restart would not)"
    )
    assert ready["ready"] is True
    assert ready["reason"].startswith("serving version 1 from the copy loaded earlier: ")
    assert moved.status_code == 409
    assert moved.json()["message"].startswith(
        "reload refused: version 2 refused (ModelIntegrityError: "
    )
    assert "crashed the check process (SIGSEGV)" in moved.json()["message"]
    assert "version 1 keeps serving" in moved.json()["message"]
    assert {(a["model_version"], a["fallback"]) for a in answers} == {("1", None)}
    assert code == 0, service.log()
    assert "Traceback" not in service.log()
