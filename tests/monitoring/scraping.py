"""A monitor's ``/metrics`` as served over HTTP, parsed by Prometheus's own parser."""

from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from arrive.monitoring.monitor import Monitor
from arrive.monitoring.monitor_http import MetricsServer, MonitorCollector


def scrape(monitor: Monitor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(lambda: (monitor.counts, monitor.latest)))
    registry.register(monitor.gauges)
    server = MetricsServer(registry, lambda: (True, "ok"), 0).start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    finally:
        server.close()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
