"""The OpenAPI document: valid OpenAPI 3.1, complete, examples that fit their schemas; and
docs/configuration.md equal to the settings table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator
from starlette.routing import Route
from starlette.testclient import TestClient

from arrive.serving.http import create_app
from arrive.serving.http.openapi import openapi_document
from arrive.serving.settings import ServeSettings, settings_table

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document(ServeSettings(max_batch=7))


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    root = {**schema, "components": document["components"]}
    return Draft202012Validator(root, format_checker=FormatChecker())


def _examples(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            places = [("request", operation.get("requestBody", {}))]
            places += [(status, r) for status, r in operation["responses"].items()]
            for where, holder in places:
                for media in holder.get("content", {}).values():
                    for name, example in media.get("examples", {}).items():
                        label = f"{method.upper()} {path} {where} {name}"
                        yield label, media["schema"], example["value"]


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_example_fits_its_schema(document: dict[str, Any]) -> None:
    examples = list(_examples(document))
    assert len(examples) >= 20
    for label, schema, value in examples:
        errors = list(_validator(document, schema).iter_errors(value))
        assert not errors, f"{label}: {errors[0].message}"


def test_every_route_is_documented_with_its_errors(document: dict[str, Any]) -> None:
    app = create_app(ServeSettings(prediction_log_dir=None))
    routes = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented
    eta = document["paths"]["/v1/eta"]["post"]["responses"]
    assert {"200", "400", "413", "422", "500", "503"} <= set(eta)
    admin = document["paths"]["/admin/reload"]["post"]
    assert {"401", "403"} <= set(admin["responses"])
    assert admin["security"] == [{"adminBearer": []}]


def test_limits_of_the_settings_are_in_the_document(document: dict[str, Any]) -> None:
    batch = document["components"]["schemas"]["BatchRequest"]["properties"]["orders"]
    assert batch["maxItems"] == 7


def test_the_schemas_accept_real_answers_and_refuse_bad_ones(
    client: TestClient, orders: list[dict[str, Any]]
) -> None:
    served = client.get("/openapi.json").json()
    answer = _validator(served, {"$ref": "#/components/schemas/EtaAnswer"})
    request = _validator(served, {"$ref": "#/components/schemas/EtaRequest"})
    answer.validate(client.post("/v1/eta", json=orders[0]).json())
    request.validate(orders[0])
    assert not request.is_valid({**orders[0], "pickup_lat": 91})
    assert not request.is_valid({"store_id": "s1"})


def test_configuration_doc_is_the_settings_table() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert settings_table() in doc, "regenerate the table: see docs/configuration.md"
