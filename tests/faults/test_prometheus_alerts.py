"""The generated rules in a real ``prometheus`` scraping a real ``arrive serve``: the
recording rules compute the objectives from the service's own metrics, and killing the
Redis store sends ``FeatureStoreDown`` pending, then clears it when Redis is back.

Prometheus runs with 1 s scrape and evaluation intervals, its own temporary storage,
on a free port (:class:`~arrive.testing.servers.prometheus_server.PrometheusServer`).
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from arrive.errors import InternalError
from arrive.monitoring.rules import rule_files
from arrive.monitoring.slo import load_slo
from arrive.testing.servers.prometheus_server import PrometheusServer
from arrive.testing.servers.redis_server import RedisServer

pytestmark = [
    pytest.mark.redis,
    pytest.mark.faults,
    pytest.mark.skipif(
        shutil.which("prometheus") is None,
        reason="prometheus missing: ./dev setup installs Debian's prometheus",
    ),
]


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    """Poll ``condition`` every 0.25 s (Prometheus works in 1 s steps) until it holds."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise InternalError(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.25)


def _store_alerts(prometheus: PrometheusServer) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts() if a["labels"]["alertname"] == "FeatureStoreDown"]


def _value(prometheus: PrometheusServer, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


def test_killing_the_store_sends_feature_store_down_pending_then_it_clears(
    start_service: Any, redis: RedisServer, fault_data: Any, tmp_path: Path
) -> None:
    rules = []
    for name, text in rule_files(load_slo(), "test").items():
        rules.append(tmp_path / name)
        rules[-1].write_text(text, encoding="utf-8")
    service = start_service({"ARRIVE_STORE_URL": redis.url})
    target = service.url.removeprefix("http://")
    orders = fault_data.orders[:20]
    with PrometheusServer([target], rule_files=rules) as prometheus:
        for order in orders:
            assert service.eta(order)["fallback"] is None
        _until(
            lambda: (
                _value(prometheus, 'sum(arrive_http_requests_total{route="/v1/eta"})')
                == len(orders)
            ),
            "the ETA answers scraped",
        )
        ratio = 'arrive_slo:error_ratio:rate5m{slo="availability"}'

        def answered_and_recorded() -> bool:  # a rate needs answers between two scrapes
            service.eta(orders[0])
            value = _value(prometheus, ratio)
            return value is not None and not math.isnan(value)

        _until(answered_and_recorded, "the recording rules to run on the scraped series")
        availability = _value(prometheus, ratio)
        before = _store_alerts(prometheus)

        port = redis.port
        redis.stop()
        try:
            _until(lambda: bool(_store_alerts(prometheus)), "FeatureStoreDown to be pending")
            down = _store_alerts(prometheus)
            answer = service.eta(orders[0])
        finally:
            redis.start(port=port)
        _until(lambda: not _store_alerts(prometheus), "FeatureStoreDown to clear")

    assert availability == 0.0  # every answer a 200: no error budget spent
    assert before == []
    assert [a["state"] for a in down] == ["pending"]  # `for: 1m` has not passed yet
    assert down[0]["labels"] == {
        "alertname": "FeatureStoreDown",
        "severity": "page",
        "job": "arrive",
        "instance": target,
    }
    assert down[0]["annotations"]["runbook_url"] == "docs/runbooks/FeatureStoreDown.md"
    assert answer["fallback"] == "store_unavailable"
