"""Provider settings: a good table builds the adapters in order; each mistake is one line
naming the field."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from arrive.cli.main import run
from arrive.errors import ConfigError
from arrive.providers.builtin import BuiltinProvider
from arrive.providers.factory import travel_providers, weather_providers
from arrive.providers.generic import GenericJsonProvider
from arrive.providers.http import VendorClient
from arrive.providers.openmeteo import OpenMeteoProvider
from arrive.providers.osrm import OsrmProvider
from arrive.providers.settings import load_provider_settings, provider_settings

GOOD = """
[providers.travel.osrm_eu]
kind = "osrm"
url = "http://osrm.internal:5000"
service = "table"

[providers.travel.matrix]
kind = "http_json"
url = "https://api.vendor.example/m?o={origin_lat},{origin_lon}&d={dest_lat},{dest_lon}"
duration_path = "rows.0.elements.0.duration.value"
key_env = "MATRIX_KEY"

[providers.travel.builtin]
kind = "builtin"
timezone = "Europe/London"

[providers.weather.meteo]
kind = "open_meteo"
url = "https://api.open-meteo.com"
"""


def test_a_good_file_builds_every_adapter_in_order(tmp_path: Path) -> None:
    path = tmp_path / "arrive.toml"
    path.write_text(GOOD)
    settings = load_provider_settings(path, {"MATRIX_KEY": "secret"})
    assert list(settings.travel) == ["osrm_eu", "matrix", "builtin"]
    assert settings.travel["matrix"].key == "secret"  # type: ignore[union-attr]

    async def build() -> tuple[list[Any], list[Any]]:
        client = VendorClient()
        try:
            return travel_providers(settings, client), weather_providers(settings, client)
        finally:
            await client.close()

    travel, weather = asyncio.run(build())
    assert [type(p) for p in travel] == [OsrmProvider, GenericJsonProvider, BuiltinProvider]
    assert [p.name for p in travel] == ["osrm_eu", "matrix", "builtin"]
    assert [type(p) for p in weather] == [OpenMeteoProvider]


def test_no_file_means_no_providers() -> None:
    assert load_provider_settings(None).travel == {}


def _travel(**fields: Any) -> dict[str, Any]:
    return {"travel": {"x": fields}}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_travel(kind="osrm", url="ftp://osrm"), "providers.travel.x.url: must be an http"),
        (_travel(kind="osrm", url="not a url"), "providers.travel.x.url:"),
        (_travel(kind="osrm"), "providers.travel.x: Object missing required field `url`"),
        (_travel(kind="tomtom", url="http://a"), "providers.travel.x.kind: unknown kind 'tomtom'"),
        (_travel(url="http://a"), "providers.travel.x.kind: missing"),
        (
            _travel(kind="http_json", url="https://a/{origin_lat}", duration_path="d"),
            "providers.travel.x.key: required for kind http_json",
        ),
        (
            _travel(kind="http_json", url="https://a/{origin}", duration_path="d", key="k"),
            "providers.travel.x.url: unknown template field {origin}",
        ),
        (
            _travel(kind="http_json", url="https://a", duration_path="a..b", key="k"),
            "providers.travel.x.duration_path:",
        ),
        (
            _travel(kind="http_json", url="https://a", duration_path="d", key_env="NOPE"),
            "providers.travel.x.key_env: environment variable NOPE is not set",
        ),
        (_travel(kind="osrm", url="http://a", timeout_ms=-1), "providers.travel.x.timeout_ms:"),
        (_travel(kind="osrm", url="http://a", colour="red"), "providers.travel.x.colour: unknown"),
        (_travel(kind="builtin", timezone="Mars/Olympus"), "providers.travel.x.timezone:"),
        ({"weather": {"w": {"kind": "open_meteo", "url": ""}}}, "providers.weather.w.url:"),
        ({"traffic": {}}, "providers.traffic: unknown setting"),
        ({"max_connections": 0}, "providers.max_connections:"),
    ],
)
def test_a_mistake_is_one_line_naming_the_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        provider_settings(table, {})
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_serve_sim_refuses_bad_options_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["providers", "serve-sim", str(tmp_path), "--error-rate", "2"]) == 2
    assert "--error-rate: a rate is in [0, 1]" in capsys.readouterr().err
    assert run(["providers", "serve-sim", str(tmp_path), "--rate-limit", "fast"]) == 2
    assert "--rate-limit: expected N or N/s" in capsys.readouterr().err
    assert run(["providers", "serve-sim", str(tmp_path)]) == 2
    assert "not a data directory" in capsys.readouterr().err
