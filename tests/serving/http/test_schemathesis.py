"""Schemathesis against the app's own OpenAPI document: no 5xx, no schema violations.

In-process (ASGI), with the real predictor and a trained model; valid and invalid
requests drawn from the document with a fixed seed (``derandomize``) and a bounded
number of examples per operation. (Driven through Hypothesis directly: schemathesis'
own pytest integration does not run under pytest 9.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from arrive.serving.http import create_app
from arrive.serving.http.openapi import openapi_document
from arrive.serving.settings import ServeSettings
from arrive.serving.wiring import build_predictor

OPERATIONS = [
    (path, method)
    for path, item in openapi_document(ServeSettings()).get("paths", {}).items()
    for method in item
]


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, trained: Any
) -> Iterator[schemathesis.BaseSchema]:
    settings = ServeSettings(
        replay_dir=trained.data_dir,
        compile_backend="none",
        prediction_log_dir=tmp_path_factory.mktemp("predictions"),
        reload_interval_s=0,
        admin_token="schemathesis-cannot-know-this-token",
        max_batch=20,
    )
    predictor = build_predictor(settings, registry=trained.registry())
    app = create_app(settings, build=lambda _: predictor)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    shutdown_lifespans()


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_api_conforms_to_its_openapi_document(
    api_schema: schemathesis.BaseSchema, path: str, method: str
) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=40,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate()

    check()
