"""The TypeScript client (clients/typescript): generated from the service's OpenAPI document,
built with the machine's Node and npm, and run by node's test runner against a live
``arrive serve``; stale generated files fail here."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from arrive.testing.servers.eta_service import ServeProcess, wait_for
from arrive.testing.servers.ports import answers_ok

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"
REGENERATE = "regenerate it: ./dev gen-clients"


def _export_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_openapi", CLIENT / "export_openapi.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _npm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args], cwd=CLIENT, capture_output=True, text=True, timeout=300, check=False
    )


def _ensure_installed() -> None:
    """``npm ci`` once per package-lock.json (a stamp in node_modules makes reruns instant)."""
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed: run ./dev setup")
    want = hashlib.sha256((CLIENT / "package-lock.json").read_bytes()).hexdigest()
    stamp = CLIENT / "node_modules" / ".arrive-lock-sha256"
    if stamp.exists() and stamp.read_text() == want:
        return
    done = _npm("ci", "--no-audit", "--no-fund")
    assert done.returncode == 0, done.stderr
    stamp.write_text(want)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``arrive serve`` on an empty registry, started (not yet up): it answers every order
    from its no-model fallback, which is all a client's contract needs (shapes, statuses,
    errors). It boots while npm builds."""
    tmp = tmp_path_factory.mktemp("ts-serve")
    env = {
        "ARRIVE_REGISTRY_DIR": str(tmp / "registry"),
        "ARRIVE_RELOAD_INTERVAL_S": "0",
        "ARRIVE_LOG_LEVEL": "warning",
        "ARRIVE_PREDICTION_LOG_DIR": str(tmp / "predictions"),
    }
    with ServeProcess(env, log_path=tmp / "serve.log") as process:
        yield process


@pytest.fixture(scope="module")
def built(service: ServeProcess) -> Path:
    _ensure_installed()
    done = _npm("run", "-s", "build")
    assert done.returncode == 0, done.stdout + done.stderr
    return CLIENT / "dist"


def test_committed_openapi_document_is_the_services() -> None:
    committed = (CLIENT / "openapi.json").read_text(encoding="utf-8")
    assert committed == _export_module().document_text(), f"openapi.json is stale: {REGENERATE}"


def test_generated_types_match_the_committed_document(built: Path) -> None:
    done = _npm("run", "-s", "check-generated")
    assert done.returncode == 0, f"src/schema.ts is stale: {REGENERATE}\n{done.stderr}"


def test_client_against_a_live_service(built: Path, service: ServeProcess) -> None:
    wait_for(lambda: answers_ok(service.url + "/healthz"), 120, "arrive serve's /healthz")
    done = subprocess.run(
        ["node", "--test", str(built / "test" / "client.test.js")],
        cwd=CLIENT,
        env={**os.environ, "ARRIVE_URL": service.url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout
    assert "# pass 6" in done.stdout
