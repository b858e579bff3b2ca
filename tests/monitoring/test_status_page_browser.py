"""The monitor's ``/status`` in headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright): it loads from the running endpoint without console errors or any other
request, shows the numbers ``/metrics`` exports, and fits a desktop and a narrow width.

The screenshots are kept for a person to look at: the test prints where (under
``.arrive/test-artifacts/status/`` of the repository, ignored by git).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from arrive.clock import ManualClock
from arrive.monitoring.drift import VERSION_SCHEMA
from arrive.monitoring.drift_metrics import DriftMetrics
from arrive.monitoring.monitor import Monitor
from arrive.monitoring.monitor_http import MetricsServer, MonitorCollector
from arrive.monitoring.status_page import StatusPage
from arrive.monitoring.status_state import QualityHistory

ARTIFACTS_NAME = "status"
"""Screenshots go to ``.arrive/test-artifacts/status/`` (the ``artifacts`` fixture)."""


@pytest.fixture
def endpoint(
    kit: ModuleType, make_monitor: Callable[..., Monitor], tmp_path: Path
) -> Iterator[str]:
    """A monitor's endpoint after a random day of three hours, with drift gauges."""
    parts, events = kit.random_day(seed=7, orders=3000, hours=3.0, files=6)
    kit.write_logs(tmp_path / "log", parts)
    monitor = make_monitor(kit.stream_of(events), horizon_s=3600.0, window_s=900.0)
    kit.run_to_end(monitor)
    gauges = DriftMetrics()
    gauges.set_drift(
        pl.DataFrame(
            [("v1", "distance_km", "numeric", 900, 0.412, True, None)],
            schema=VERSION_SCHEMA,
            orient="row",
        )
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(lambda: (monitor.counts, monitor.latest)))
    registry.register(gauges)
    page = StatusPage(
        registry,
        QualityHistory(monitor.settings.out_dir).since,
        monitor.watermarks,
        ManualClock(kit.T0 + timedelta(hours=6)),
    )
    server = MetricsServer(registry, lambda: (True, "ok"), 0, status=page.render).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def _overall(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            overall = labels.get("segment_kind") == "all" and labels.get("variant") == "production"
            if sample.name == name and overall:
                return float(sample.value)
    raise AssertionError(f"{name} of segment all not exported")


@pytest.mark.parametrize("width", [1280, 800])
def test_status_page_renders_cleanly_in_chromium(
    browser: Any, endpoint: str, artifacts: Path, width: int
) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    response = page.goto(f"{endpoint}/status")
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    overflow = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth,"
        " [...document.querySelectorAll('section')].filter(s => s.scrollWidth > s.clientWidth + 1)"
        ".map(s => s.id)]"
    )
    text = page.inner_text("body")
    figures = page.locator("figure svg").count()
    page.screenshot(path=str(artifacts / f"status-{width}.png"), full_page=True)
    page.close()

    assert response is not None
    assert response.status == 200
    assert problems == []
    assert requests == [f"{endpoint}/status"]  # self-contained: nothing else fetched
    assert overflow[0] <= overflow[1], overflow
    assert overflow[2] == [], "sections wider than the page"
    assert figures == 2  # coverage by segment, MAE and coverage over windows
    coverage = _overall(endpoint, "arrive_online_p90_coverage")
    mae = _overall(endpoint, "arrive_online_p50_mae_seconds")
    assert f"{coverage * 100:.1f} %" in text
    assert f"{mae / 60:,.2f} min" in text
    assert "FeatureDrift" in text
    assert "PSI 0.412" in text
