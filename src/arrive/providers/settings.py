"""Provider settings: which vendors to call, read once at the edge from the ``providers``
table of a TOML file. Every mistake stops the start in one line naming the field::

    [providers]
    max_connections = 100

    [providers.travel.osrm_eu]          # tried in the order written
    kind = "osrm"
    url = "http://osrm.internal:5000"
    profile = "driving"

    [providers.travel.matrix_vendor]
    kind = "http_json"
    url = "https://api.vendor.example/v2/matrix?o={origin_lat},{origin_lon}&d={dest_lat},{dest_lon}"
    duration_path = "rows.0.elements.0.duration.value"
    key_env = "MATRIX_VENDOR_KEY"       # or key = "…"

    [providers.travel.builtin]
    kind = "builtin"
    timezone = "Europe/London"

    [providers.weather.meteo]
    kind = "open_meteo"
    url = "https://api.open-meteo.com"
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import msgspec

from arrive.errors import ConfigError
from arrive.providers import jsonpath
from arrive.providers.generic import TEMPLATE_FIELDS
from arrive.providers.osrm import Service
from arrive.tomlfile import read_toml

_NAME: Final = re.compile(r"^[A-Za-z][\w-]{0,62}$")
TimeoutMs = Annotated[float, msgspec.Meta(gt=0, le=60_000)]


class _Kind(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: str
    timeout_ms: TimeoutMs = 200.0
    """The call's default budget (the chain may give it less)."""


class OsrmSettings(_Kind, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``kind = "osrm"``: an OSRM-compatible server."""

    url: str
    profile: Annotated[str, msgspec.Meta(pattern=r"^[\w-]+$")] = "driving"
    service: Service = "route"


class HttpJsonSettings(_Kind, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``kind = "http_json"``: a JSON vendor described by its URL template and paths."""

    url: str
    duration_path: str
    duration_unit: Literal["s", "min", "ms"] = "s"
    distance_path: str | None = None
    distance_unit: Literal["m", "km"] = "m"
    key: str | None = None
    key_env: str | None = None
    key_in: Literal["header", "query", "none"] = "header"
    key_name: Annotated[str, msgspec.Meta(min_length=1)] = "Authorization"


class BuiltinSettings(_Kind, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``kind = "builtin"``: the speed-by-hour estimate (cannot fail)."""

    timezone: str = "UTC"


class OpenMeteoSettings(_Kind, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``kind = "open_meteo"``: an Open-Meteo-compatible current-weather API."""

    url: str
    key: str | None = None
    key_env: str | None = None


TravelSettings = OsrmSettings | HttpJsonSettings | BuiltinSettings
WeatherSettings = OpenMeteoSettings
TRAVEL_KINDS: Final[dict[str, type[TravelSettings]]] = {
    "builtin": BuiltinSettings,
    "http_json": HttpJsonSettings,
    "osrm": OsrmSettings,
}
WEATHER_KINDS: Final[dict[str, type[WeatherSettings]]] = {"open_meteo": OpenMeteoSettings}


class ProviderSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Every configured provider, by name, in the order written (the chain's order)."""

    travel: dict[str, TravelSettings] = msgspec.field(default_factory=dict)
    weather: dict[str, WeatherSettings] = msgspec.field(default_factory=dict)
    max_connections: int = 100


def load_provider_settings(
    config_file: Path | None, environ: Mapping[str, str] | None = None
) -> ProviderSettings:
    """The ``providers`` table of ``config_file`` (none configured without a file).

    Args:
        config_file: a TOML file, or None.
        environ: where ``key_env`` variables are read (pass ``os.environ`` at the edge).

    Raises:
        ConfigError: one line naming the field (``providers.travel.NAME.url: …``).
    """
    if config_file is None:
        return ProviderSettings()
    table = read_toml(config_file, "config file").get("providers", {})
    return provider_settings(table, environ or {})


def provider_settings(table: Any, environ: Mapping[str, str]) -> ProviderSettings:
    """The settings of a ``providers`` table already read (see :func:`load_provider_settings`).

    Raises:
        ConfigError: one line naming the field.
    """
    _check_table(table, "providers")
    unknown = set(table) - {"travel", "weather", "max_connections"}
    if unknown:
        raise ConfigError(
            f"providers.{sorted(unknown)[0]}: unknown setting "
            "(known: travel, weather, max_connections)"
        )
    connections = table.get("max_connections", 100)
    if (
        isinstance(connections, bool)
        or not isinstance(connections, int)
        or not 1 <= connections <= 10_000
    ):
        raise ConfigError(
            f"providers.max_connections: must be a whole number in [1, 10000] (got {connections!r})"
        )
    travel = {
        n: _one("travel", n, t, TRAVEL_KINDS, environ) for n, t in _section(table, "travel").items()
    }
    weather = {
        n: _one("weather", n, t, WEATHER_KINDS, environ)
        for n, t in _section(table, "weather").items()
    }
    return ProviderSettings(travel=travel, weather=weather, max_connections=connections)


def _section(table: Mapping[str, Any], family: str) -> dict[str, Any]:
    section = table.get(family, {})
    _check_table(section, f"providers.{family}")
    return dict(section)


def _check_table(value: Any, field: str) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{field}: must be a table (got {type(value).__name__})")


def _one(
    family: str, name: str, table: Any, kinds: Mapping[str, type[Any]], environ: Mapping[str, str]
) -> Any:
    field = f"providers.{family}.{name}"
    if not _NAME.match(name):
        raise ConfigError(f"{field}: a provider name is a letter then letters, digits, _ or -")
    _check_table(table, field)
    kind = table.get("kind")
    if kind is None:
        raise ConfigError(f"{field}.kind: missing (one of {', '.join(kinds)})")
    if kind not in kinds:
        raise ConfigError(f"{field}.kind: unknown kind {kind!r} (known: {', '.join(kinds)})")
    try:
        settings = msgspec.convert(table, kinds[kind], strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(field, str(exc))) from None
    return _checked(field, settings, environ)


def _explain(field: str, message: str) -> str:
    match = re.search(r" - at `\$\.(\w+)`", message)
    if match is None:
        found = re.search(r"unknown field `(\w+)`", message)
        if found:
            return f"{field}.{found.group(1)}: unknown setting"
        return f"{field}: {message}"
    return f"{field}.{match.group(1)}: {message[: match.start()]}"


def _checked(field: str, settings: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(settings, BuiltinSettings):
        _check_timezone(f"{field}.timezone", settings.timezone)
        return settings
    if isinstance(settings, HttpJsonSettings):
        _check_template(f"{field}.url", settings.url)
        jsonpath.parse(settings.duration_path, f"{field}.duration_path")
        if settings.distance_path is not None:
            jsonpath.parse(settings.distance_path, f"{field}.distance_path")
        if settings.key_in == "none":
            return settings
        return msgspec.structs.replace(settings, key=_key(field, settings, environ, required=True))
    _check_url(f"{field}.url", settings.url)
    if isinstance(settings, OpenMeteoSettings):
        return msgspec.structs.replace(settings, key=_key(field, settings, environ, required=False))
    return settings


def _key(field: str, settings: Any, environ: Mapping[str, str], required: bool) -> str | None:
    if settings.key is not None and settings.key_env is not None:
        raise ConfigError(f"{field}.key: set key or key_env, not both")
    if settings.key_env is not None:
        value = environ.get(settings.key_env, "").strip()
        if not value:
            raise ConfigError(
                f"{field}.key_env: environment variable {settings.key_env} is not set"
            )
        return value
    if settings.key is not None and not settings.key.strip():
        raise ConfigError(f"{field}.key: empty")
    if required and settings.key is None:
        raise ConfigError(
            f'{field}.key: required for kind {settings.kind} (or key_env, or key_in = "none")'
        )
    return settings.key  # type: ignore[no-any-return]


def _check_url(field: str, url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ConfigError(f"{field}: not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{field}: must be an http:// or https:// URL with a host (got {url!r})")


def _check_template(field: str, template: str) -> None:
    try:
        names = {part[1] for part in string.Formatter().parse(template) if part[1] is not None}
    except ValueError as exc:
        raise ConfigError(f"{field}: not a URL template ({exc})") from None
    unknown = sorted(n for n in names if n not in TEMPLATE_FIELDS)
    if unknown:
        raise ConfigError(
            f"{field}: unknown template field {{{unknown[0]}}} "
            f"(known: {', '.join(TEMPLATE_FIELDS)})"
        )
    _check_url(field, template.format(**dict.fromkeys(TEMPLATE_FIELDS, "0")))


def _check_timezone(field: str, name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{field}: unknown timezone {name!r}") from None
