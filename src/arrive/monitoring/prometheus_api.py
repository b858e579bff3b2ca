"""Instant queries to a Prometheus server's HTTP API (``/api/v1/query``), for the parts
of the status page the monitor cannot measure itself: the service-side objectives'
error ratios (``arrive_slo:error_ratio:rate<window>``) and the alerts firing there."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

from arrive.errors import ConfigError, SourceUnavailable

Series = list[tuple[dict[str, str], float]]
"""An instant vector: each series' labels (``__name__`` included) and value."""


class Queries(Protocol):
    """Answers PromQL instant queries.

    To implement, provide at least ``query(expr)``: the vector of ``expr`` now; raise
    :class:`~arrive.errors.SourceUnavailable` when the server cannot answer.
    """

    def query(self, expr: str) -> Series: ...


class PrometheusApi:
    """:class:`Queries` over HTTP to the server at ``url`` (``http(s)://host:port``).

    Raises:
        ConfigError: ``url`` is not an http(s) URL with a host.
    """

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{url}: expected http://HOST:PORT of a Prometheus server")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, expr: str) -> Series:
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout_s) as answer:
                body = json.loads(answer.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SourceUnavailable(f"Prometheus at {self.url} did not answer ({exc})") from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            reason = body.get("error", body) if isinstance(body, dict) else body
            raise SourceUnavailable(f"Prometheus at {self.url}: {reason}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise SourceUnavailable(f"Prometheus at {self.url}: no data in {body}")
        if data.get("resultType") != "vector":
            raise SourceUnavailable(f"Prometheus at {self.url}: {expr} is not an instant vector")
        return [(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]
