"""Arrive's service-level objectives, read from one TOML file (``slo.toml``).

The defaults ship beside this module (:data:`DEFAULT_FILE`, documented in
``docs/slo.md``); a user's file replaces any of its values. :func:`load_slo` validates
every value: a bad one raises :class:`~arrive.errors.ConfigError` naming the key
(``latency.threshold_s``) and the file. :mod:`arrive.monitoring.rules` turns the
result into Prometheus rules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from arrive.errors import ConfigError
from arrive.monitoring.metrics import HTTP_BUCKETS
from arrive.tomlfile import read_toml

DEFAULT_FILE: Final = Path(__file__).with_name("slo.toml")

Objective = Annotated[float, msgspec.Meta(ge=0.931, lt=1.0)]
"""A target share. At least 0.931: the fastest burn-rate alert (14.4x) needs an error
budget below 1/14.4, or it could never fire."""
Route = Annotated[str, msgspec.Meta(pattern=r"^/[A-Za-z0-9/_-]*$")]
Routes = Annotated[tuple[Route, ...], msgspec.Meta(min_length=1)]
Positive = Annotated[float, msgspec.Meta(gt=0.0)]
Ratio = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
_ETA_ROUTES: Final = ("/v1/eta", "/v1/eta/batch")


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Availability(_Section, frozen=True, kw_only=True):
    """Share of requests to ``routes`` answered without a 5xx."""

    objective: Objective = 0.999
    routes: Routes = _ETA_ROUTES


class Latency(_Section, frozen=True, kw_only=True):
    """Share of requests to ``routes`` answered within ``threshold_s``."""

    objective: Objective = 0.99
    threshold_s: Positive = 0.025
    routes: Routes = _ETA_ROUTES


class ModelAnswers(_Section, frozen=True, kw_only=True):
    """Share of answers given by the model, not the heuristic."""

    objective: Objective = 0.95


class Freshness(_Section, frozen=True, kw_only=True):
    """Share of time the ingest watermark lag is at most ``max_lag_s``."""

    objective: Objective = 0.99
    max_lag_s: Positive = 60.0


class Calibration(_Section, frozen=True, kw_only=True):
    """Share of time the overall P90 coverage lies within its band."""

    objective: Objective = 0.95


class CauseAlerts(_Section, frozen=True, kw_only=True):
    """Thresholds of the alerts on causes rather than budgets."""

    ingest_lag_s: Positive = 300.0
    dead_letter_ratio: Ratio = 0.01
    skew_mismatch_ratio: Ratio = 0.01
    retrain_stale_s: Positive = 172800.0


class SloConfig(_Section, frozen=True, kw_only=True):
    """Every objective and alert threshold (see ``slo.toml`` for their meaning)."""

    runbook_base_url: Annotated[str, msgspec.Meta(min_length=1)] = "docs/runbooks"
    availability: Availability = msgspec.field(default_factory=Availability)
    latency: Latency = msgspec.field(default_factory=Latency)
    model_answers: ModelAnswers = msgspec.field(default_factory=ModelAnswers)
    freshness: Freshness = msgspec.field(default_factory=Freshness)
    calibration: Calibration = msgspec.field(default_factory=Calibration)
    alerts: CauseAlerts = msgspec.field(default_factory=CauseAlerts)


def load_slo(path: Path | None = None) -> SloConfig:
    """The objectives of the TOML file ``path`` (None: the shipped defaults).

    Raises:
        ConfigError: the file is missing, unreadable or not TOML, a key is unknown, or
            a value is invalid; the message names the file and the key.
    """
    source = path or DEFAULT_FILE
    return parse_slo(read_toml(source, "SLO file"), str(source))


def parse_slo(values: dict[str, Any], source: str) -> SloConfig:
    """``values`` (a parsed TOML document) as a validated :class:`SloConfig`."""
    try:
        config = msgspec.convert(values, SloConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_explain(str(exc))}") from None
    if config.latency.threshold_s not in HTTP_BUCKETS:
        bounds = ", ".join(f"{b:g}" for b in HTTP_BUCKETS)
        raise ConfigError(
            f"{source}: latency.threshold_s: must be a bucket bound of "
            f"arrive_http_request_seconds ({bounds}), got {config.latency.threshold_s:g}"
        )
    return config


def _explain(message: str) -> str:
    """msgspec's ``Expected ... - at `$.latency.threshold_s``` as ``latency.threshold_s: ...``."""
    match = re.search(r" - at `\$\.([\w.\[\]]+)`", message)
    if match is None:
        return message
    return f"{match.group(1)}: {message[: match.start()]}"
