"""Bodies that are not UTF-8 JSON, wrong content types and trailing slashes: each gets the
documented error body (400 naming the field, 415, 404), never a 500 or a redirect."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

_AUTH = {"Authorization": "Bearer test-admin-token-0123456789"}


def _refused(response: Any, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["field"] == field
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("path", "content", "field"),
    [
        ("/v1/eta", b'{"order_id":"\xff\xfe"}', "order_id"),
        ("/v1/eta", b'{"order_id":"o1","attributes":{"rain":"\xc3"}}', "attributes.rain"),
        ("/v1/eta", b'{"order_id":"o1","\xff":1}', "body"),
        ("/v1/eta/batch", b'{"orders":[{"order_id":"o1"},{"order_id":"o\xed\xa0\x80"}]}',
         "orders[1].order_id"),
        ("/admin/kill-switch", b'{"o\xffn":true}', "body"),
    ],
)  # fmt: skip
def test_invalid_utf8_is_400_naming_the_field(
    client: TestClient, path: str, content: bytes, field: str
) -> None:
    response = client.post(
        path, content=content, headers={**_AUTH, "content-type": "application/json"}
    )
    body = _refused(response, 400, field)
    assert body["error"] == "malformed_request"
    assert "not valid UTF-8" in body["message"]


_NOT_JSON = (
    ("/v1/eta", "text/plain"),
    ("/v1/eta/batch", "application/x-www-form-urlencoded"),
    ("/admin/kill-switch", "application/json; charset=latin-1"),
)


def test_a_content_type_other_than_json_is_415(client: TestClient) -> None:
    for path, content_type in _NOT_JSON:
        headers = {**_AUTH, "content-type": content_type}
        response = client.post(path, content=b'{"order_id": "o1"}', headers=headers)
        body = _refused(response, 415, "Content-Type")
        assert body["error"] == "unsupported_media_type"
        assert content_type in body["message"]


def test_json_and_a_missing_content_type_are_accepted(
    client: TestClient, orders: list[dict[str, Any]]
) -> None:
    body = b'{"order_id": "%s"}' % orders[0]["order_id"].encode()
    for content_type in (
        None,
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/vnd.eta+json",
    ):
        headers = {} if content_type is None else {"content-type": content_type}
        response = client.post("/v1/eta", content=body, headers=headers)
        assert response.status_code == 200, (content_type, response.text)
        assert response.json()["p50_s"] > 0


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/eta/"), ("POST", "/v1/eta/batch/")])
def test_a_trailing_slash_is_404_not_a_redirect(
    client: TestClient, orders: list[dict[str, Any]], method: str, path: str
) -> None:
    response = client.request(method, path, json=orders[0], follow_redirects=False)
    body = _refused(response, 404, None)
    assert body["error"] == "not_found"
    assert path.rstrip("/") in body["message"]
    assert "location" not in response.headers


def test_an_unknown_path_with_a_slash_is_a_plain_404(client: TestClient) -> None:
    response = client.get("/v2/eta/", follow_redirects=False)
    assert _refused(response, 404, None)["message"] == "no such route"
