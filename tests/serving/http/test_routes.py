"""Every route of the ETA service, in-process, with the real predictor and a trained model."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from arrive.serving.settings import ServeSettings


def test_eta_answers_with_the_model(client: TestClient, orders: list[dict[str, Any]]) -> None:
    response = client.post("/v1/eta", json=orders[-1])
    assert response.status_code == 200
    answer = response.json()
    assert answer["order_id"] == orders[-1]["order_id"]
    assert answer["fallback"] is None
    assert answer["variant"] == "production"
    assert answer["model_version"] == "1"
    assert 0 < answer["p50_s"] <= answer["p90_s"]
    created = datetime.fromisoformat(orders[-1]["created_at"])
    promised = datetime.fromisoformat(answer["promised_at"])
    assert promised.utcoffset() == timedelta(0)
    assert promised == created + timedelta(seconds=answer["p90_s"])
    assert isinstance(answer["stale_features"], list)
    assert response.headers["x-request-id"] == answer["request_id"]
    assert response.headers["content-type"] == "application/json"


def test_request_id_comes_from_the_body_then_the_header_else_is_generated(
    client: TestClient, orders: list[dict[str, Any]]
) -> None:
    from_body = client.post(
        "/v1/eta", json={**orders[0], "request_id": "body-1"}, headers={"X-Request-ID": "hdr-1"}
    )
    from_header = client.post("/v1/eta", json=orders[0], headers={"X-Request-ID": "hdr-2"})
    generated = client.post("/v1/eta", json=orders[0])
    assert from_body.json()["request_id"] == from_body.headers["x-request-id"] == "body-1"
    assert from_header.json()["request_id"] == from_header.headers["x-request-id"] == "hdr-2"
    fresh = generated.json()["request_id"]
    assert len(fresh) == 32
    assert generated.headers["x-request-id"] == fresh


def test_created_at_defaults_to_the_server_clock(
    client: TestClient, orders: list[dict[str, Any]]
) -> None:
    body = {k: v for k, v in orders[0].items() if k != "created_at"}
    before = datetime.now().astimezone()
    answer = client.post("/v1/eta", json=body).json()
    promised = datetime.fromisoformat(answer["promised_at"]) - timedelta(seconds=answer["p90_s"])
    assert before <= promised <= datetime.now().astimezone()


def test_batch_answers_every_order_in_order(
    client: TestClient, orders: list[dict[str, Any]]
) -> None:
    batch = [orders[0], {**orders[1], "request_id": "mine"}, orders[2]]
    response = client.post("/v1/eta/batch", json={"orders": batch}, headers={"X-Request-ID": "b"})
    assert response.status_code == 200
    answers = response.json()["answers"]
    assert [a["order_id"] for a in answers] == [o["order_id"] for o in batch]
    assert [a["request_id"] for a in answers] == ["b-0", "mine", "b-2"]
    assert all(a["fallback"] is None and a["p50_s"] <= a["p90_s"] for a in answers)
    assert response.headers["x-request-id"] == "b"


def test_batch_answers_match_single_answers(
    client: TestClient, orders: list[dict[str, Any]]
) -> None:
    singles = [client.post("/v1/eta", json=o).json() for o in orders[:5]]
    batch = client.post("/v1/eta/batch", json={"orders": orders[:5]}).json()["answers"]
    flat = [a[q] for a in batch for q in ("p50_s", "p90_s")]
    assert flat == pytest.approx([a[q] for a in singles for q in ("p50_s", "p90_s")])


def test_healthz_and_readyz(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert (health["status"], health["store"], health["problems"]) == ("ok", "up", [])
    assert health["ready"] is True
    assert health["model_version"] == "1"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "reason": None}


def test_without_a_model_the_heuristic_answers_and_readyz_stays_200(
    serve: Any, serve_settings: ServeSettings, trained: Any, orders: list[dict[str, Any]]
) -> None:
    registry = trained.registry()
    registry.set_alias("production", None, reason="test: no model")
    with serve(serve_settings, registry=registry) as (client, _):
        ready = client.get("/readyz")
        answer = client.post("/v1/eta", json=orders[0])
        health = client.get("/healthz")
    assert ready.status_code == 200
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["model_version"] is None
    assert "no model serves" in health.json()["problems"][0]
    assert answer.status_code == 200
    assert answer.json()["fallback"] == "no_model"
    assert answer.json()["variant"] == "heuristic"
    assert answer.json()["model_version"] is None


def test_with_nothing_loadable_readyz_is_503(
    serve: Any, serve_settings: ServeSettings, orders: list[dict[str, Any]]
) -> None:
    from arrive.registry import InMemoryRegistry

    with serve(serve_settings, registry=InMemoryRegistry()) as (client, _):
        ready = client.get("/readyz")
        answer = client.post("/v1/eta", json=orders[0])
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert "no model and no heuristic" in ready.json()["reason"]
    assert answer.json()["fallback"] == "no_model"


def test_metrics_count_the_answers(client: TestClient, orders: list[dict[str, Any]]) -> None:
    client.post("/v1/eta", json=orders[0])
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'arrive_predictions_total{fallback="none",variant="production"}' in response.text


def test_docs_page_loads_the_openapi_document(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    assert '"/openapi.json"' in response.text
