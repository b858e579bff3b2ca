"""Whatever JSON a vendor sends, an adapter answers a checked value or raises
ProviderError with a known reason: never another exception, never an unchecked number.

The bodies come from a local HTTP server the test starts (a real socket, no mock), each
the adapter's format with its numbers replaced by arbitrary JSON, or arbitrary JSON.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrive.providers import jsonpath, plausible
from arrive.providers.base import REASONS, ProviderError, TravelTime, Weather
from arrive.providers.generic import GenericFormat, GenericJsonProvider
from arrive.providers.http import VendorClient
from arrive.providers.openmeteo import OpenMeteoProvider
from arrive.providers.osrm import OsrmProvider
from arrive.testing.provider_contract import CENTRE, leg

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


class _Body:
    def __init__(self) -> None:
        self.raw = b"{}"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, _Body]]:
    body = _Body()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as vendors
        disable_nagle_algorithm = True  # headers and body are two writes

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body.raw)))
            self.end_headers()
            self.wfile.write(body.raw)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", body
    httpd.shutdown()
    httpd.server_close()


def _route(a: Any, b: Any) -> Any:
    return {"code": "Ok", "routes": [{"duration": a, "distance": b}]}


def _table(a: Any, b: Any) -> Any:
    return {"code": "Ok", "durations": [[a]], "distances": [[b]]}


def _generic(a: Any, b: Any) -> Any:
    return {"data": {"duration_min": a, "distance_km": b}}


def _meteo(a: Any, b: Any) -> Any:
    return {"current": {"temperature_2m": a, "precipitation": b, "wind_speed_10m": a}}


def _adapters(url: str, client: VendorClient) -> dict[str, Any]:
    form = GenericFormat(
        url_template=url + "/t?o={origin_lat},{origin_lon}",
        duration_path=jsonpath.parse("data.duration_min", "d"),
        duration_unit="min",
        distance_path=jsonpath.parse("data.distance_km", "d"),
        distance_unit="km",
        key_in="none",
    )
    return {
        "route": OsrmProvider("route", client, url, service="route"),
        "table": OsrmProvider("table", client, url, service="table"),
        "generic": GenericJsonProvider("generic", client, form),
        "meteo": OpenMeteoProvider("meteo", client, url),
    }


SHAPES: dict[str, Callable[[Any, Any], Any]] = {
    "route": _route,
    "table": _table,
    "generic": _generic,
    "meteo": _meteo,
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_any_json_is_an_answer_or_a_reasoned_error(name: str, server: tuple[str, _Body]) -> None:
    url, body = server
    runner = asyncio.Runner()
    client = runner.run(_make_client())
    adapter = _adapters(url, client)[name]
    trip = leg()

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(document=st.one_of(JSON, st.builds(SHAPES[name], JSON, JSON)))
    def check(document: Any) -> None:
        body.raw = json.dumps(document).encode()
        try:
            if name == "meteo":
                answer: Any = runner.run(adapter.current(*CENTRE, timeout_s=5.0))
            else:
                answer = runner.run(adapter.travel_time(trip, timeout_s=5.0))
        except ProviderError as exc:
            answer = exc
        if isinstance(answer, ProviderError):
            assert answer.reason in REASONS
            return
        if isinstance(answer, Weather):
            assert math.isfinite(answer.temperature_c)
            assert answer.precipitation_mm >= 0
            return
        assert isinstance(answer, TravelTime)
        km = trip.great_circle_km
        assert plausible.min_seconds(km) <= answer.seconds <= plausible.max_seconds(km)

    try:
        check()
    finally:
        runner.run(client.close())
        runner.close()


async def _make_client() -> VendorClient:
    return VendorClient()
