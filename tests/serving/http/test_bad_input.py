"""Bad requests: 400, 413, 422 (naming the field), 404, 405, and 500 without a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from starlette.testclient import TestClient

from arrive.schema.eta import EtaAnswer, Health, ReloadAnswer
from arrive.schema.events import OrderCreated
from arrive.serving.http import create_app
from arrive.serving.settings import ServeSettings


def _refused(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["field"] == field
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


def test_malformed_json_is_400(client: TestClient) -> None:
    body = _refused(client.post("/v1/eta", content=b'{"order_id": "o1"'), 400)
    assert body["error"] == "malformed_request"
    assert "not valid JSON" in body["message"]


@pytest.mark.parametrize(
    ("patch", "field", "reason"),
    [
        ({"pickup_lat": 91}, "pickup_lat", "<= 90"),
        ({"drop_lon": "east"}, "drop_lon", "got `str`"),
        ({"items": -1}, "items", ">= 0"),
        ({"order_id": ""}, "order_id", "length >= 1"),
        ({"created_at": "2025-03-10T12:00:00"}, "created_at", "timezone"),
        ({"created_at": "1900-01-01T00:00:00Z"}, "created_at", "1970-2999"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"request_id": "has space"}, "request_id", "match"),
        ({"attributes": {"rain": [1]}}, "attributes[...]", "Expected"),
    ],
)
def test_invalid_order_is_422_naming_the_field(
    client: TestClient, orders: list[dict[str, Any]], patch: dict[str, Any], field: str, reason: str
) -> None:
    body = _refused(client.post("/v1/eta", json={**orders[0], **patch}), 422, field)
    assert body["error"] == "validation_error"
    assert reason in body["message"]
    assert body["message"].startswith(f"{field}: ")


def test_missing_order_id_is_422(client: TestClient) -> None:
    body = _refused(client.post("/v1/eta", json={"store_id": "s1"}), 422, "order_id")
    assert "required field is missing" in body["message"]


def test_body_of_the_wrong_shape_is_422(client: TestClient) -> None:
    _refused(client.post("/v1/eta", json=[{"order_id": "o1"}]), 422, "body")


def test_invalid_request_id_header_is_422(client: TestClient, orders: list[dict[str, Any]]) -> None:
    response = client.post("/v1/eta", json=orders[0], headers={"X-Request-ID": "a b"})
    _refused(response, 422, "X-Request-ID")


def test_invalid_order_in_a_batch_names_its_index(
    client: TestClient, orders: list[dict[str, Any]]
) -> None:
    batch = [orders[0], {**orders[1], "items": "many"}]
    _refused(client.post("/v1/eta/batch", json={"orders": batch}), 422, "orders[1].items")


def test_batch_over_max_batch_is_422_naming_orders(
    client: TestClient, serve_settings: ServeSettings
) -> None:
    batch = [{"order_id": f"o{i}"} for i in range(serve_settings.max_batch + 1)]
    body = _refused(client.post("/v1/eta/batch", json={"orders": batch}), 422, "orders")
    assert f"at most {serve_settings.max_batch}" in body["message"]


def test_empty_batch_is_422(client: TestClient) -> None:
    _refused(client.post("/v1/eta/batch", json={"orders": []}), 422, "orders")


def test_body_over_the_cap_is_413_by_content_length(
    client: TestClient, serve_settings: ServeSettings
) -> None:
    big = b'{"order_id": "' + b"x" * serve_settings.max_body_bytes + b'"}'
    body = _refused(client.post("/v1/eta", content=big), 413, "body")
    assert str(serve_settings.max_body_bytes) in body["message"]


def test_body_over_the_cap_is_413_while_streaming(
    client: TestClient, serve_settings: ServeSettings
) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"orders": ['
        for i in range(serve_settings.max_body_bytes // 20):
            yield b'{"order_id": "o%05d"},' % i
        yield b'{"order_id": "last"}]}'

    _refused(client.post("/v1/eta/batch", content=chunks()), 413, "body")


def test_malformed_content_length_is_400(client: TestClient) -> None:
    response = client.post("/v1/eta", content=b"{}", headers={"Content-Length": "2x"})
    _refused(response, 400, "Content-Length")


def test_unknown_route_is_404(client: TestClient) -> None:
    assert _refused(client.get("/v2/eta"), 404)["error"] == "not_found"


def test_wrong_method_is_405_with_allow(client: TestClient) -> None:
    response = client.get("/v1/eta")
    assert _refused(response, 405)["error"] == "method_not_allowed"
    assert response.headers["allow"] == "POST"


class _BrokenPredictor:
    """A predictor with a bug: predict raises (the app must hide it)."""

    async def predict(
        self, orders: Sequence[OrderCreated], request_ids: Sequence[str]
    ) -> list[EtaAnswer]:
        raise RuntimeError("secret internals /srv/model.txt")

    def ready(self) -> tuple[bool, str]:
        return True, ""

    def health(self) -> Health:
        return Health()

    async def reload(self) -> ReloadAnswer:
        return ReloadAnswer(model_version="1")

    def set_kill_switch(self, on: bool) -> None:
        return None


def test_a_bug_is_500_with_a_request_id_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(ServeSettings(prediction_log_dir=None), _BrokenPredictor())
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.post("/v1/eta", json={"order_id": "o1"}, headers={"X-Request-ID": "r-9"})
    body = _refused(response, 500)
    assert body == {
        "error": "internal_error",
        "message": "internal error (request id r-9)",
        "field": None,
        "request_id": "r-9",
    }
    assert "secret" not in response.text
    logged = [r for r in caplog.records if "r-9" in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None
