"""The OpenAPI 3.1 document of the ETA service and its interactive docs page.

Schemas come from the msgspec types in :mod:`arrive.schema.eta` and
:mod:`arrive.serving.http.schema` (``msgspec.json.schema_components``), the same
types the routes decode with, so the document cannot drift from the code. Limits
from the settings (``max_batch``, ``max_body_bytes``) are written into it.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any, Final

import msgspec

from arrive.schema.eta import EtaAnswer, EtaRequest, Health, ReloadAnswer
from arrive.serving.http.schema import (
    BatchAnswer,
    BatchRequest,
    ErrorBody,
    KillSwitchRequest,
    KillSwitchState,
    Readiness,
)
from arrive.serving.settings import ServeSettings

METRICS_MEDIA_TYPE: Final = "text/plain"
_REF: Final = "#/components/schemas/{name}"
_TYPES: Final = (
    EtaRequest,
    BatchRequest,
    EtaAnswer,
    BatchAnswer,
    ErrorBody,
    Health,
    Readiness,
    KillSwitchRequest,
    KillSwitchState,
    ReloadAnswer,
)

EXAMPLE_ANSWER: Final = {
    "request_id": "req-7f3a",
    "order_id": "o-1042",
    "p50_s": 1680.0,
    "p90_s": 2310.5,
    "promised_at": "2025-03-03T12:38:30.500000Z",
    "model_version": "3",
    "variant": "production",
    "fallback": None,
    "stale_features": [],
}
EXAMPLE_FALLBACK: Final = {
    **EXAMPLE_ANSWER,
    "model_version": None,
    "variant": "heuristic",
    "fallback": "store_unavailable",
    "stale_features": ["store_prep_mean_s"],
}
EXAMPLE_REQUEST: Final = {
    "order_id": "o-1042",
    "request_id": "req-7f3a",
    "created_at": "2025-03-03T12:00:00Z",
    "store_id": "s-17",
    "market_id": "berlin",
    "pickup_lat": 52.52,
    "pickup_lon": 13.405,
    "drop_lat": 52.49,
    "drop_lon": 13.43,
    "items": 3,
    "distinct_items": 2,
    "subtotal": 24.9,
    "store_category": "pizza",
}
_ERRORS: Final = {
    400: (
        "The body is not JSON (a string that is not UTF-8 is named in `field`), "
        "or a header is malformed.",
        "malformed_request",
        None,
    ),
    401: ("Missing, malformed or wrong bearer token.", "unauthorized", "Authorization"),
    403: ("The admin endpoints are disabled: no admin_token is configured.", "forbidden", None),
    409: ("The registry refused the model; the previous one keeps serving.", "refused", None),
    413: ("The body is larger than max_body_bytes.", "body_too_large", "body"),
    415: (
        "The Content-Type is not application/json (or application/*+json, UTF-8); "
        "a request without one is read as JSON.",
        "unsupported_media_type",
        "Content-Type",
    ),
    422: (
        "A field is invalid; `field` names its path.",
        "validation_error",
        "orders[0].pickup_lat",
    ),
    500: (
        "A bug; the answer holds the request id only (the log has the rest).",
        "internal_error",
        None,
    ),
    503: ("The service is starting or stopping.", "unavailable", None),
}


def openapi_document(settings: ServeSettings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the app built with ``settings``."""
    _, schemas = msgspec.json.schema_components(_TYPES, ref_template=_REF)
    schemas["BatchRequest"]["properties"]["orders"]["maxItems"] = settings.max_batch
    return {
        "openapi": "3.1.0",
        "info": _info(settings),
        "paths": _paths(settings),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"adminBearer": {"type": "http", "scheme": "bearer"}},
            "headers": {"X-Request-ID": {"description": "The request id.", "schema": _RID}},
        },
    }


def docs_page(openapi_url: str = "/openapi.json") -> str:
    """An HTML page rendering the document with Swagger UI (loaded from a CDN)."""
    return _DOCS_HTML.replace("{openapi_url}", openapi_url)


_RID: Final = {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}$"}
_CDN: Final = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"
_DOCS_HTML: Final = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Arrive ETA service - API</title>
<link rel="stylesheet" href="{_CDN}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{_CDN}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: "{{openapi_url}}", dom_id: "#swagger-ui"}});
</script>
</body>
</html>
"""


def _info(settings: ServeSettings) -> dict[str, Any]:
    return {
        "title": "Arrive ETA service",
        "version": version("arrive"),
        "description": (
            "Calibrated P50/P90 delivery ETAs. Every ETA answer is 200: when the model "
            "cannot answer (no model, stale features, store down, deadline, overload, "
            "kill switch) the heuristic does and `fallback` says why. Bodies are capped at "
            f"{settings.max_body_bytes} bytes (413) and batches at {settings.max_batch} "
            "orders (422 naming `orders`). Every answer carries `X-Request-ID`: the "
            "caller's (body `request_id`, else the header) or a fresh one."
        ),
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    }


def _paths(settings: ServeSettings) -> dict[str, Any]:
    return {
        "/v1/eta": {"post": _eta_operation()},
        "/v1/eta/batch": {"post": _batch_operation(settings)},
        "/healthz": {"get": _health_operation()},
        "/readyz": {"get": _ready_operation()},
        "/metrics": {"get": _metrics_operation()},
        "/openapi.json": {"get": _openapi_operation()},
        "/docs": {"get": _docs_operation()},
        "/admin/reload": {"post": _reload_operation()},
        "/admin/kill-switch": {"post": _kill_switch_operation()},
    }


def _eta_operation() -> dict[str, Any]:
    return {
        "operationId": "estimate",
        "summary": "ETA of one order",
        "description": "P50/P90 of one order's delivery duration and the promised time.",
        "tags": ["eta"],
        "parameters": [_request_id_parameter()],
        "requestBody": _body("EtaRequest", EXAMPLE_REQUEST),
        "responses": {
            "200": _ok("EtaAnswer", {"model": EXAMPLE_ANSWER, "fallback": EXAMPLE_FALLBACK}),
            **_errors(400, 413, 415, 422, 500, 503),
        },
    }


def _batch_operation(settings: ServeSettings) -> dict[str, Any]:
    return {
        "operationId": "estimateBatch",
        "summary": "ETAs of several orders",
        "description": (
            f"Up to {settings.max_batch} orders; one answer per order, in order. An order "
            "without `request_id` gets `<batch request id>-<index>`."
        ),
        "tags": ["eta"],
        "parameters": [_request_id_parameter()],
        "requestBody": _body("BatchRequest", {"orders": [EXAMPLE_REQUEST]}),
        "responses": {
            "200": _ok("BatchAnswer", {"batch": {"answers": [EXAMPLE_ANSWER, EXAMPLE_FALLBACK]}}),
            **_errors(400, 413, 415, 422, 500, 503),
        },
    }


_HEALTH_EXAMPLE: Final = {
    "status": "degraded",
    "ready": True,
    "model_version": "3",
    "store": "down",
    "kill_switch": False,
    "recent_answers": 1000,
    "recent_fallbacks": {"store_unavailable": 940},
    "problems": [
        "feature store unreachable; the heuristic answers",
        "940 of the last 1000 answers from the heuristic (mostly store_unavailable)",
    ],
}


def _health_operation() -> dict[str, Any]:
    return {
        "operationId": "health",
        "summary": "Liveness (always 200 while the process answers), with the state of "
        "the model and the feature store and the recent fallback reasons",
        "tags": ["operations"],
        "responses": {"200": _ok("Health", {"ok": _HEALTH_EXAMPLE}, request_id=False)},
    }


def _ready_operation() -> dict[str, Any]:
    not_ready = {"ready": False, "reason": "no model is loaded"}
    return {
        "operationId": "ready",
        "summary": "Readiness: this replica can answer (a model, or at least the "
        "heuristic, is loaded); the feature store's state does not count",
        "tags": ["operations"],
        "responses": {
            "200": _ok("Readiness", {"ready": {"ready": True, "reason": None}}, request_id=False),
            "503": {
                "description": "Not ready; `reason` says why.",
                "content": {JSON_TYPE: _media("Readiness", {"not_ready": not_ready})},
            },
        },
    }


def _metrics_operation() -> dict[str, Any]:
    return {
        "operationId": "metrics",
        "summary": "Prometheus metrics (all worker processes)",
        "tags": ["operations"],
        "responses": {
            "200": {
                "description": "Prometheus text exposition format.",
                "content": {METRICS_MEDIA_TYPE: {"schema": {"type": "string"}}},
            }
        },
    }


def _openapi_operation() -> dict[str, Any]:
    return {
        "operationId": "openapi",
        "summary": "This OpenAPI 3.1 document",
        "tags": ["operations"],
        "responses": {
            "200": {
                "description": "The document.",
                "content": {JSON_TYPE: {"schema": {"type": "object"}}},
            }
        },
    }


def _docs_operation() -> dict[str, Any]:
    return {
        "operationId": "docs",
        "summary": "Interactive API documentation (Swagger UI)",
        "tags": ["operations"],
        "responses": {
            "200": {
                "description": "An HTML page.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        },
    }


def _reload_operation() -> dict[str, Any]:
    return {
        "operationId": "reload",
        "summary": "Reload the served alias from the registry",
        "description": "Checks the stored files of the alias's version (and of the "
        "version serving) in a child process: checksums, then the model must parse and "
        "reproduce its reference predictions. The answer lists what each check found. "
        "A version that fails is refused (409, the message says why and what keeps "
        "serving): the newest older version that passes serves instead.",
        "tags": ["admin"],
        "security": [{"adminBearer": []}],
        "parameters": [_request_id_parameter()],
        "responses": {
            "200": _ok(
                "ReloadAnswer",
                {
                    "reloaded": {
                        "model_version": "3",
                        "alias_version": "3",
                        "checks": [
                            {
                                "version": "3",
                                "status": "ok",
                                "reason": "32 probe rows match the reference predictions",
                            }
                        ],
                    }
                },
            ),
            **_errors(401, 403, 409, 422, 500, 503),
        },
    }


def _kill_switch_operation() -> dict[str, Any]:
    return {
        "operationId": "killSwitch",
        "summary": "Force the heuristic for every answer (or stop forcing it)",
        "description": "While on, every answer has `fallback` = `kill_switch`.",
        "tags": ["admin"],
        "security": [{"adminBearer": []}],
        "parameters": [_request_id_parameter()],
        "requestBody": _body("KillSwitchRequest", {"on": True}),
        "responses": {
            "200": _ok("KillSwitchState", {"on": {"kill_switch": True}}),
            **_errors(400, 401, 403, 413, 415, 422, 500, 503),
        },
    }


JSON_TYPE: Final = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _media(schema: str, examples: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": _ref(schema),
        "examples": {name: {"value": value} for name, value in examples.items()},
    }


def _body(schema: str, example: Any) -> dict[str, Any]:
    return {"required": True, "content": {JSON_TYPE: _media(schema, {"example": example})}}


def _ok(schema: str, examples: dict[str, Any], *, request_id: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": "Success.",
        "content": {JSON_TYPE: _media(schema, examples)},
    }
    if request_id:
        response["headers"] = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _error(status) for status in statuses}


def _error(status: int) -> dict[str, Any]:
    description, code, field = _ERRORS[status]
    example = {
        "error": code,
        "message": description,
        "field": field,
        "request_id": "req-7f3a",
    }
    return {
        "description": description,
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
        "content": {JSON_TYPE: _media("ErrorBody", {code: example})},
    }


def _request_id_parameter() -> dict[str, Any]:
    return {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "description": "The caller's request id; echoed (a body `request_id` wins).",
        "schema": _RID,
    }
