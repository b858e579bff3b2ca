"""Calibration drift: P90 coverage off its band, only when the Wilson interval is sure,
and a +20 % shift of delivery times turns ``arrive_calibration_drift`` on."""

from __future__ import annotations

import math
import random
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from arrive.monitoring.join import CLOSED
from arrive.monitoring.monitor import Monitor
from arrive.monitoring.monitor_http import MetricsServer, MonitorCollector
from arrive.monitoring.quality import Band, aggregate, wilson_interval

Z90 = 1.2815515655446004  # the standard normal's 90 % quantile


def test_wilson_interval_matches_the_textbook_values() -> None:
    low, high = wilson_interval(9, 10)  # Newcombe (1998): 0.5958 to 0.9821
    assert (round(low, 4), round(high, 4)) == (0.5958, 0.9821)
    low, high = wilson_interval(0, 10)  # never below 0, unlike the normal approximation
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)


def _closed(kit: ModuleType, orders: int, covered: int) -> pl.DataFrame:
    """``orders`` joined rows of one window, ``covered`` of them delivered by the P90."""
    t = kit.T0
    rows = [
        (
            f"r{i}",
            f"o{i}",
            t,
            "production",
            "v1",
            600.0,
            900.0,
            "none",
            "10-99",
            0.004,  # latency_s
            None,  # error
            t + timedelta(seconds=800 if i < covered else 1000),
            t,
            "delivered",
            t,
            "s",
            "m",
            "c",
        )
        for i in range(orders)
    ]
    return pl.DataFrame(rows, schema=CLOSED, orient="row")


@pytest.mark.parametrize(
    ("orders", "covered", "drift"),
    [
        (10, 8, False),  # 80 %, but ten orders cannot tell: the interval reaches the band
        (1000, 800, True),  # 80 % of a thousand: surely below 88 %
        (1000, 905, False),  # within the band
        (2000, 1900, True),  # 95 %: surely above 92 % (over-wide promises drift too)
    ],
)
def test_drift_needs_the_whole_interval_outside_the_band(
    kit: ModuleType, orders: int, covered: int, drift: bool
) -> None:
    table = aggregate(_closed(kit, orders, covered), 300.0, "UTC", Band())
    row = table.filter(pl.col("segment_kind") == "all").row(0, named=True)
    assert row["p90_coverage"] == pytest.approx(covered / orders)
    assert row["calibration_drift"] is drift


def _calibrated_hour(kit: ModuleType, log_dir: Path, shift: float, seed: int = 11) -> list[object]:
    """2,000 model answers in an hour whose P50/P90 are the true quantiles of a
    log-normal delivery time; deliveries stretched by ``shift``."""
    rng = random.Random(seed)
    sigma = 0.4
    answers, events = [], []
    for i in range(2000):
        order, at_s, median = f"o{i}", rng.uniform(0, 3600), rng.uniform(900, 2400)
        answers.append(kit.Served(order, at_s, median, median * math.exp(sigma * Z90)))
        duration = median * math.exp(sigma * rng.gauss(0.0, 1.0)) * shift
        events += [kit.created(order, at_s), kit.delivered(order, at_s + duration)]
    answers.sort(key=lambda a: a.at_s)
    kit.write_log(log_dir, answers)
    return events


def _scrape(monitor: Monitor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(lambda: (monitor.counts, monitor.latest)))
    server = MetricsServer(registry, lambda: (True, "ok"), 0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            text = response.read().decode()
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
            assert response.status == 200
    finally:
        server.close()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


ALL = (("segment", "all"), ("segment_kind", "all"), ("variant", "production"), ("version", "v1"))


@pytest.mark.parametrize(("shift", "drift"), [(1.0, 0.0), (1.2, 1.0)])
def test_delivery_times_twenty_percent_longer_turn_the_calibration_alert_on(
    kit: ModuleType,
    make_monitor: Callable[..., Monitor],
    tmp_path: Path,
    shift: float,
    drift: float,
) -> None:
    events = _calibrated_hour(kit, tmp_path / "log", shift)
    # a horizon long enough for the slowest log-normal delivery (4 σ above 2,400 s)
    monitor = make_monitor(kit.stream_of(events), window_s=3600.0, horizon_s=8 * 3600.0)
    kit.run_to_end(monitor)
    metrics = _scrape(monitor)
    coverage = metrics["arrive_online_p90_coverage", ALL]
    assert metrics["arrive_calibration_drift", ALL] == drift
    assert metrics["arrive_online_orders", ALL] == 2000
    if shift == 1.0:
        assert 0.88 <= coverage <= 0.92
    else:  # the P90 now covers about Φ(1.28 − ln 1.2 / 0.4) ≈ 80 %
        assert metrics["arrive_online_p90_coverage_upper", ALL] < 0.88
        assert coverage == pytest.approx(0.796, abs=0.03)
    assert metrics["arrive_monitor_outcomes_total", (("result", "joined"),)] == 2000
    assert (
        metrics["arrive_monitor_joined_total", (("variant", "production"), ("version", "v1"))]
        == 2000
    )
    assert (
        metrics["arrive_monitor_last_window_end_timestamp_seconds", ()]
        == (kit.T0 + timedelta(hours=1)).timestamp()
    )
