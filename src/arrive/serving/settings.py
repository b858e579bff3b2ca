"""Settings of the ETA service (``arrive serve``), loaded once at the edge.

Sources, later ones winning: the defaults below, a TOML file (top-level keys named
as the fields), ``ARRIVE_<FIELD>`` environment variables (e.g. ``ARRIVE_PORT``),
then explicit overrides (the command's options). Every value is validated; a bad
one raises :class:`~arrive.errors.ConfigError` naming the setting and where it came
from. Environment variables starting with ``ARRIVE_`` that name no setting here are
left alone (other components read their own).

The table of settings in ``docs/configuration.md`` is :func:`settings_table`'s
output; a test keeps the two equal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec

from arrive.errors import ConfigError
from arrive.registry.local import DEFAULT_ROOT
from arrive.schema.eta import Variant
from arrive.tomlfile import read_toml

ENV_PREFIX: Final = "ARRIVE_"

_STORE_URL = r"^(memory|(redis|rediss|unix|redis\+cluster|rediss\+cluster)://.+)$"


def _doc(text: str, **constraints: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **constraints)


class ServeSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything ``arrive serve`` and the ETA app need; see each field's description.

    Build it with :func:`load_settings` (files, environment, overrides) or directly
    in tests (``ServeSettings(port=0)``); direct construction does not validate, so
    pass it through :func:`validated` when the values come from outside.
    """

    host: Annotated[str, _doc("Interface to listen on.", min_length=1)] = "127.0.0.1"
    port: Annotated[int, _doc("TCP port to listen on.", ge=1, le=65535)] = 8000
    workers: Annotated[int, _doc("Worker processes (each runs the whole app).", ge=1, le=64)] = 1
    registry_dir: Annotated[Path, _doc("Model registry directory.")] = DEFAULT_ROOT
    alias: Annotated[
        Literal["production", "canary", "shadow"], _doc("Registry alias whose model is served.")
    ] = "production"
    store_url: Annotated[
        str,
        _doc(
            "Online feature store: `memory` (in-process), a `redis://`, `rediss://` "
            "or `unix://` URL, or a Redis Cluster as `redis+cluster://host:port[,host:port…]` "
            "(its startup nodes); `?prefix=P` puts the keys under P, as ingest wrote them.",
            pattern=_STORE_URL,
        ),
    ] = "memory"
    replay_dir: Annotated[
        Path | None,
        _doc("Data directory whose event log fills the in-process store at start (memory only)."),
    ] = None
    deadline_ms: Annotated[
        float, _doc("Budget for one request's feature read and model (ms).", gt=0, le=60_000)
    ] = 25.0
    store_timeout_ms: Annotated[
        float,
        _doc(
            "Redis socket connect/read timeout (ms): a read slower than this marks the store "
            "down until a ping succeeds; a read merely past `deadline_ms` does not.",
            gt=0,
            le=60_000,
        ),
    ] = 1000.0
    max_in_flight: Annotated[
        int,
        _doc(
            "Requests in progress per worker (feature reads past their deadline included) "
            "before new ones get the heuristic with reason `overload`.",
            ge=1,
        ),
    ] = 48
    admission_wait_ms: Annotated[
        float,
        _doc(
            "Longest a request waits for one of the `max_in_flight` slots before it gets the "
            "heuristic with reason `overload` (ms; queue-delay shedding, docs/overload.md); "
            "0 sheds at once.",
            ge=0,
            le=60_000,
        ),
    ] = 1000.0
    max_queued: Annotated[
        int,
        _doc(
            "Requests waiting for a slot per worker at most; one more gets `overload` at once.",
            ge=0,
        ),
    ] = 4096
    max_batch: Annotated[
        int, _doc("Most orders in one /v1/eta/batch request.", ge=1, le=10_000)
    ] = 500
    max_body_bytes: Annotated[
        int, _doc("Largest request body accepted (bytes); larger gets 413.", ge=1024)
    ] = 1_048_576
    max_header_bytes: Annotated[
        int,
        _doc(
            "Largest request line plus headers accepted (bytes); larger gets 431 and the "
            "connection closes.",
            ge=1024,
            le=1_048_576,
        ),
    ] = 16_384
    max_headers: Annotated[
        int,
        _doc("Most header lines in one request; more gets 431 and the connection closes.", ge=8),
    ] = 100
    header_timeout_s: Annotated[
        float,
        _doc(
            "Time a request's line and headers may take to arrive, from its first byte "
            "(seconds); slower gets 408 and the connection closes.",
            gt=0,
        ),
    ] = 10.0
    body_timeout_s: Annotated[
        float,
        _doc(
            "Time a request's body may take to arrive after its headers (seconds); "
            "slower (e.g. shorter than its Content-Length) gets 408 and the connection closes.",
            gt=0,
        ),
    ] = 15.0
    keep_alive_timeout_s: Annotated[
        float,
        _doc(
            "A connection with no request in progress (new, or kept alive after an answer) "
            "closes after this long (seconds); keep it above your load balancer's idle timeout.",
            gt=0,
        ),
    ] = 20.0
    max_connections: Annotated[
        int,
        _doc(
            "Open connections per worker; past it a new connection gets 503 and is closed.",
            ge=1,
        ),
    ] = 1024
    admin_token: Annotated[
        Annotated[str, msgspec.Meta(min_length=16)] | None,
        _doc("Bearer token of the /admin endpoints (at least 16 characters); unset disables them."),
    ] = None
    kill_switch_file: Annotated[
        Path | None,
        _doc(
            "File holding the kill switch and the count of admin reloads, shared by the "
            "worker processes and kept across restarts; unset: `arrive serve` makes a "
            "temporary one for several workers."
        ),
    ] = None
    access_log: Annotated[
        bool, _doc("Log every HTTP request (costs throughput; off by default).")
    ] = False
    shutdown_timeout_s: Annotated[
        float,
        _doc("On SIGTERM, how long in-flight requests may finish before closing (seconds).", gt=0),
    ] = 10.0
    worker_healthcheck_timeout_s: Annotated[
        float,
        _doc(
            "With several workers, how long a worker may take to answer the supervisor's "
            "liveness ping before it is killed and replaced (seconds); also how long a "
            "worker that failed to start may go unnoticed.",
            ge=1,
            le=3600,
        ),
    ] = 10.0
    prediction_log_dir: Annotated[
        Path | None, _doc("Directory of the prediction log (Parquet); unset disables it.")
    ] = Path(".arrive/predictions")
    prediction_log_rotate_s: Annotated[
        float, _doc("Start a new prediction-log file after this many seconds.", gt=0)
    ] = 3600.0
    prediction_log_retention_days: Annotated[
        float, _doc("Delete prediction-log files older than this (days).", gt=0)
    ] = 7.0
    prediction_log_buffer: Annotated[
        int, _doc("Predictions held in memory before new ones are dropped and counted.", ge=1)
    ] = 100_000
    shadow_queue: Annotated[
        int,
        _doc(
            "Shadow-scoring jobs (requests) a worker holds during a rollout (in the shadow "
            "phase the candidate scores the control's orders, at canary steps each version "
            "the other's) before new ones are dropped and counted.",
            ge=1,
            le=1_000_000,
        ),
    ] = 1000
    shadow_linger_ms: Annotated[
        float,
        _doc(
            "How long a worker lets shadow jobs gather before it scores them in one call "
            "(milliseconds; 0: each as it comes). Batches cost the answers far less than "
            "one call per request; the shadow rows reach the log this much later.",
            ge=0,
            le=10_000,
        ),
    ] = 250.0
    prediction_log_flush_s: Annotated[
        float,
        _doc(
            "How often buffered predictions are written (seconds); small, so that each "
            "write holds the interpreter only briefly.",
            gt=0,
        ),
    ] = 0.1
    reload_interval_s: Annotated[
        float, _doc("How often the alias is checked for a new model (seconds); 0 disables.", ge=0)
    ] = 10.0
    max_stale_fraction: Annotated[
        float,
        _doc("Largest share of stale or missing features the model may answer with.", ge=0, le=1),
    ] = 0.5
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], _doc("Logging level of the service.")
    ] = "info"
    compile_backend: Annotated[
        Literal["lleaves", "tl2cgen", "none"],
        _doc(
            "Compiler of the model's trees (built in the background; plain LightGBM "
            "serves until it is ready); `none` serves with LightGBM only."
        ),
    ] = "lleaves"
    compile_cache_dir: Annotated[
        Path, _doc("Directory of compiled models, by the SHA-256 of each booster.")
    ] = Path(".arrive/compiled")
    model_check_timeout_s: Annotated[
        float,
        _doc(
            "How long the check of a model's files may take before the model counts as "
            "broken (seconds): a child process parses it and compares its predictions on "
            "the probe batch with the reference ones.",
            gt=0,
        ),
    ] = 300.0
    store_check_interval_s: Annotated[
        float,
        _doc(
            "How often the feature store is pinged (seconds): readiness, and recovery "
            "after it was unreachable.",
            gt=0,
        ),
    ] = 1.0
    max_feature_lag_s: Annotated[
        float,
        _doc(
            "How far the ingest watermark may trail the read time before the maintained "
            "aggregates count as stale (seconds).",
            gt=0,
        ),
    ] = 300.0
    no_model_p50_s: Annotated[
        float,
        _doc(
            "P50 answered (fallback `no_model`) when no model version of the registry "
            "can be loaded at all, so no heuristic exists either (seconds).",
            gt=0,
        ),
    ] = 2700.0
    no_model_p90_s: Annotated[
        float,
        _doc("P90 answered in the same case (seconds; at least `no_model_p50_s`).", gt=0),
    ] = 3600.0
    providers: Annotated[
        dict[str, Any],
        _doc(
            "The `[providers]` table of the config file (not from the environment): travel-time "
            "vendors tried in order before the built-in estimate (docs/providers.md); empty: "
            "the built-in estimate only, no vendor call."
        ),
    ] = {}
    provider_share: Annotated[
        float,
        _doc(
            "Share of `deadline_ms` the provider chain has for a leg's travel time (it runs "
            "beside the feature read).",
            gt=0,
            le=1,
        ),
    ] = 0.5
    provider_cache_url: Annotated[
        str,
        _doc(
            "Travel-time cache: `memory` (per worker) or a `redis://`, `rediss://` or "
            "`unix://` URL shared by workers and replicas.",
            pattern=_STORE_URL,
        ),
    ] = "memory"
    provider_cache_ttl_s: Annotated[
        float, _doc("A cached travel time answers for this long (seconds).", gt=0)
    ] = 3600.0
    provider_cache_grace_s: Annotated[
        float,
        _doc(
            "After its TTL, a cached travel time still answers (`grace`) this long while one "
            "request refreshes it (seconds).",
            ge=0,
        ),
    ] = 600.0
    provider_cache_cell_m: Annotated[
        float, _doc("Side of the geo cells that key the cache (metres).", gt=0)
    ] = 2500.0
    provider_cache_bucket_s: Annotated[
        float,
        _doc(
            "Departure-time bucket that keys the cache with the cells (seconds): legs "
            "between the same cells leaving in the same bucket share one vendor answer.",
            gt=0,
        ),
    ] = 3600.0
    provider_cache_rescale: Annotated[
        bool,
        _doc(
            "Carry a cached travel time over to the leg asked by the built-in estimate's "
            "ratio (its distance and hour against the cached leg's)."
        ),
    ] = True
    provider_breaker_open_s: Annotated[
        float,
        _doc(
            "How long a provider's open circuit breaker refuses calls before a half-open "
            "probe (seconds).",
            gt=0,
            le=3600,
        ),
    ] = 5.0


FIELDS: Final = ServeSettings.__struct_fields__
FILE_ONLY: Final = frozenset({"providers"})
"""Settings no environment variable sets (tables)."""


def env_name(field: str) -> str:
    """The environment variable of setting ``field`` (``port`` → ``ARRIVE_PORT``)."""
    return ENV_PREFIX + field.upper()


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServeSettings:
    """The settings from defaults, ``config_file``, ``environ`` and ``overrides``.

    Args:
        config_file: a TOML file of settings, or None.
        environ: the environment to read ``ARRIVE_*`` variables from (pass
            ``os.environ`` at the edge; tests pass a dict). None reads none.
        overrides: values that win over everything (``None`` values are ignored).

    Raises:
        ConfigError: the file is missing or not TOML, a key names no setting, or a
            value is invalid; the message names the setting and its source.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config_file is not None:
        _merge(values, sources, read_toml(config_file, "config file"), str(config_file))
    _merge(values, sources, _from_env(environ or {}), "environment")
    _merge(values, sources, {k: v for k, v in (overrides or {}).items() if v is not None}, "option")
    return _convert(values, sources)


def validated(settings: ServeSettings) -> ServeSettings:
    """``settings`` checked against every constraint (ConfigError when one fails)."""
    values = msgspec.structs.asdict(settings)
    return _convert(values, dict.fromkeys(values, "value"))


def settings_table() -> str:
    """The Markdown table documenting every setting: name, variable, default, meaning."""
    rows = ["| setting | environment variable | default | meaning |", "|---|---|---|---|"]
    defaults = ServeSettings()
    for name, meaning in _descriptions().items():
        default = _show(getattr(defaults, name))
        variable = "(file only)" if name in FILE_ONLY else f"`{env_name(name)}`"
        rows.append(f"| `{name}` | {variable} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def _merge(
    values: dict[str, Any], sources: dict[str, str], new: Mapping[str, Any], source: str
) -> None:
    for key, value in new.items():
        if key not in FIELDS:
            raise ConfigError(f"{source}: unknown setting {key!r} (known: {', '.join(FIELDS)})")
        values[key] = value
        sources[key] = env_name(key) if source == "environment" else source


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in FIELDS:
        if name in FILE_ONLY:
            continue
        raw = environ.get(env_name(name))
        if raw is not None:
            found[name] = None if raw.strip() == "" else raw.strip()
    return found


def _convert(values: dict[str, Any], sources: Mapping[str, str]) -> ServeSettings:
    try:
        return msgspec.convert(values, ServeSettings, strict=False, dec_hook=_from_text)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), sources)) from None


def _from_text(kind: type, value: Any) -> Any:
    """Paths from the environment and TOML files arrive as strings (in code, as paths)."""
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    raise TypeError(f"Expected `{kind.__name__}`, got `{type(value).__name__}`")


def _explain(message: str, sources: Mapping[str, str]) -> str:
    match = re.search(r" - at `\$\.(\w+)`", message)
    if match is None:
        return f"invalid settings: {message}"
    field = match.group(1)
    reason = message[: match.start()]
    return f"setting {field} (from {sources.get(field, 'defaults')}): {reason}"


def _descriptions() -> dict[str, str]:
    # msgspec.inspect, not msgspec.json.schema: the latter cannot encode Path defaults
    info = msgspec.inspect.type_info(ServeSettings)
    fields = info.fields if isinstance(info, msgspec.inspect.StructType) else ()
    return {field.name: _description(field.type) for field in fields}


def _description(kind: msgspec.inspect.Type) -> str:
    if isinstance(kind, msgspec.inspect.Metadata) and kind.extra_json_schema:
        return str(kind.extra_json_schema.get("description", ""))
    return ""


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if value == {}:
        return "empty"
    return f"`{value}`"


@dataclass(frozen=True)
class PredictorConfig:
    """The hot path's limits and background intervals (from :class:`ServeSettings`, which
    holds their defaults)."""

    variant: Variant
    deadline_s: float
    max_in_flight: int
    max_stale_fraction: float
    reload_interval_s: float
    store_check_interval_s: float
    log_flush_s: float
    close_timeout_s: float = 5.0
    admission_wait_s: float = 0.0
    """Longest wait for a slot before ``overload`` (0: shed at once)."""
    max_queued: int = 0
    """Requests waiting for a slot at most."""
    follow_interval_s: float = 0.25
    """How often a worker checks whether another one took an admin reload."""

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> PredictorConfig:
        """The config of ``settings``."""
        return cls(
            variant=settings.alias,
            deadline_s=settings.deadline_ms / 1000.0,
            max_in_flight=settings.max_in_flight,
            max_stale_fraction=settings.max_stale_fraction,
            reload_interval_s=settings.reload_interval_s,
            store_check_interval_s=settings.store_check_interval_s,
            log_flush_s=settings.prediction_log_flush_s,
            admission_wait_s=settings.admission_wait_ms / 1000.0,
            max_queued=settings.max_queued,
        )
