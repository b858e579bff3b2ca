"""Admin routes: bearer-token auth, the kill switch, reloads (including a corrupted model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from starlette.testclient import TestClient

from arrive.registry import LocalRegistry
from arrive.serving.settings import ServeSettings
from arrive.testing.servers.eta_service import wait_for


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_BAD_AUTH = (
    {},
    {"Authorization": "Bearer wrong-token-wrong-token"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer"},
)


def test_admin_needs_the_bearer_token(client: TestClient) -> None:
    for path in ("/admin/reload", "/admin/kill-switch"):
        for headers in _BAD_AUTH:
            response = client.post(path, json={"on": True}, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.json()["field"] == "Authorization"
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_admin_is_disabled_without_a_configured_token(
    serve: Any, serve_settings: ServeSettings, admin_token: str
) -> None:
    settings = msgspec.structs.replace(serve_settings, admin_token=None)
    with serve(settings) as (client, _):
        for path in ("/admin/reload", "/admin/kill-switch"):
            response = client.post(path, json={"on": True}, headers=_auth(admin_token))
            assert response.status_code == 403
            assert response.json()["error"] == "forbidden"


def test_kill_switch_forces_the_heuristic_until_turned_off(
    client: TestClient, admin_token: str, orders: list[dict[str, Any]]
) -> None:
    on = client.post("/admin/kill-switch", json={"on": True}, headers=_auth(admin_token))
    assert on.status_code == 200
    assert on.json() == {"kill_switch": True}
    killed = client.post("/v1/eta", json=orders[0]).json()
    batch = client.post("/v1/eta/batch", json={"orders": orders[:3]}).json()["answers"]
    client.post("/admin/kill-switch", json={"on": False}, headers=_auth(admin_token))
    back = client.post("/v1/eta", json=orders[0]).json()
    assert killed["fallback"] == "kill_switch"
    assert killed["variant"] == "heuristic"
    assert killed["model_version"] is None
    assert killed["p50_s"] <= killed["p90_s"]
    assert {a["fallback"] for a in batch} == {"kill_switch"}
    assert back["fallback"] is None


def test_kill_switch_body_is_validated(client: TestClient, admin_token: str) -> None:
    response = client.post("/admin/kill-switch", json={"on": "yes"}, headers=_auth(admin_token))
    assert response.status_code == 422
    assert response.json()["field"] == "on"


def test_reload_follows_the_alias(
    serve: Any,
    serve_settings: ServeSettings,
    local_registry: Callable[[int], LocalRegistry],
    admin_token: str,
    orders: list[dict[str, Any]],
) -> None:
    registry = local_registry(2)
    with serve(serve_settings, registry=registry) as (client, _):
        assert client.post("/v1/eta", json=orders[0]).json()["model_version"] == "1"
        registry.set_alias("production", "2", reason="test: promote")
        reloaded = client.post("/admin/reload", headers=_auth(admin_token))
        answer = client.post("/v1/eta", json=orders[0]).json()
    assert reloaded.status_code == 200
    assert reloaded.json() == {
        "model_version": "2",
        "alias_version": "2",
        "checks": [
            {
                "version": "2",
                "status": "ok",
                "reason": "32 probe rows match the reference predictions",
            }
        ],
    }
    assert answer["model_version"] == "2"
    assert answer["fallback"] is None


def test_corrupted_model_is_refused_and_the_previous_keeps_serving(
    serve: Any,
    serve_settings: ServeSettings,
    local_registry: Callable[[int], LocalRegistry],
    admin_token: str,
    orders: list[dict[str, Any]],
) -> None:
    registry = local_registry(2)
    for booster in (registry.root / "versions" / "2").glob("booster_*.txt"):
        booster.write_bytes(booster.read_bytes()[:-100] + b"corrupted")
    settings = msgspec.structs.replace(serve_settings, reload_interval_s=0.05)
    with serve(settings, registry=registry) as (client, _):
        before = _refusals(client)
        registry.set_alias("production", "2", reason="test: promote a corrupted model")
        wait_for(lambda: _refusals(client) > before, what="the watcher to refuse version 2")
        watched = client.post("/v1/eta", json=orders[0]).json()
        reloaded = client.post("/admin/reload", headers=_auth(admin_token))
        answer = client.post("/v1/eta", json=orders[0]).json()
        ready = client.get("/readyz")
    assert watched["model_version"] == "1"
    assert watched["fallback"] is None
    assert reloaded.status_code == 409  # the admin learns the target was refused
    assert "version 2 refused" in reloaded.json()["message"]
    assert "version 1 keeps serving" in reloaded.json()["message"]
    assert answer["model_version"] == "1"
    assert answer["fallback"] is None
    assert ready.status_code == 200


def test_reload_without_any_model_is_409(
    serve: Any, serve_settings: ServeSettings, trained: Any, admin_token: str
) -> None:
    registry = trained.registry()
    registry.set_alias("production", None, reason="test: no model")
    with serve(serve_settings, registry=registry) as (client, _):
        response = client.post("/admin/reload", headers=_auth(admin_token))
    assert response.status_code == 409
    assert response.json()["error"] == "refused"


def _refusals(client: TestClient) -> float:
    """``arrive_model_reloads_total{outcome="refused"}`` (process-wide, so compare deltas)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('arrive_model_reloads_total{outcome="refused"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
