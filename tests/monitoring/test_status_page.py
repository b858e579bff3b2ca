"""The monitor's status page shows the numbers ``/metrics`` exports, the alerts the
monitor sees, and the calibration objective's error budget from the quality files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from arrive.clock import ManualClock
from arrive.monitoring.drift import VERSION_SCHEMA
from arrive.monitoring.drift_metrics import DriftMetrics
from arrive.monitoring.monitor import Monitor
from arrive.monitoring.monitor_http import MetricsServer, MonitorCollector
from arrive.monitoring.prometheus_api import PrometheusApi
from arrive.monitoring.quality import QUALITY, Band
from arrive.monitoring.skew import SCHEMA as SKEW_SCHEMA
from arrive.monitoring.status_page import PlotCache, StatusPage
from arrive.monitoring.status_state import FIRING, RATIOS, QualityHistory, calibration_budget
from arrive.testing.servers.eta_service import wait_for
from arrive.testing.servers.ports import free_port
from arrive.testing.servers.prometheus_server import PrometheusServer
from arrive.testing.source_contract import unique_name

Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Served:
    """A monitor that ran over a random day, its page and its endpoint."""

    monitor: Monitor
    page: StatusPage
    base: str


def drift_metrics() -> DriftMetrics:
    gauges = DriftMetrics()
    gauges.set_drift(
        pl.DataFrame(
            [
                ("v1", "distance_km", "numeric", 900, 0.412, True, None),
                ("v1", "hour_sin", "numeric", 900, 0.018, False, None),
            ],
            schema=VERSION_SCHEMA,
            orient="row",
        )
    )
    gauges.set_skew(
        pl.DataFrame(
            [("local_hour", 200, 9, 0.045, "o1", None), ("distance_km", 200, 0, 0.0, None, None)],
            schema=SKEW_SCHEMA,
            orient="row",
        )
    )
    return gauges


@pytest.fixture
def served(
    kit: ModuleType, make_monitor: Callable[..., Monitor], tmp_path: Path
) -> Iterator[Served]:
    parts, events = kit.random_day(seed=7, orders=3000, hours=3.0, files=6)
    kit.write_logs(tmp_path / "log", parts)
    monitor = make_monitor(kit.stream_of(events), horizon_s=3600.0, window_s=1800.0)
    kit.run_to_end(monitor)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(lambda: (monitor.counts, monitor.latest)))
    registry.register(drift_metrics())
    page = StatusPage(
        registry,
        QualityHistory(monitor.settings.out_dir).since,
        monitor.watermarks,
        ManualClock(kit.T0 + timedelta(hours=6)),
    )
    server = MetricsServer(registry, lambda: (True, "ok"), 0, status=page.render).start()
    try:
        yield Served(monitor, page, f"http://127.0.0.1:{server.port}")
    finally:
        server.close()


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def metrics(base: str) -> dict[Key, float]:
    status, _, text = _get(f"{base}/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class _Cells(HTMLParser):
    """Every element with ``data-metric``: its metric, labels (its own ``data-labels``
    or its row's) and text."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, str, str]] = []
        self.alerts: list[list[str]] = []
        self._row_labels = ""
        self._open: list[tuple[str, str]] = []
        self._alert: list[str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "tr":
            self._row_labels = values.get("data-labels", "")
            if values.get("class") == "firing alert":
                self._alert = []
        if tag == "td" and self._alert is not None:
            self._text = []
        if "data-metric" in values:
            self._open.append((values["data-metric"], values.get("data-labels", self._row_labels)))
            self._text = []

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._open:
            metric, labels = self._open.pop()
            self.cells.append((metric, labels, "".join(self._text).strip()))
        elif tag == "td" and self._alert is not None:
            self._alert.append("".join(self._text).strip())
        if tag == "tr" and self._alert is not None:
            self.alerts.append(self._alert)
            self._alert = None


def page_cells(html: str) -> _Cells:
    parser = _Cells()
    parser.feed(html)
    return parser


def shown_value(text: str) -> tuple[float, float]:
    """A number as the page shows it, in the metric's unit, and half its last digit."""
    if text.count("-") == 2:  # a UTC time
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp(), 0.5
    number, _, unit = text.replace(",", "").partition(" ")
    digits = len(number.partition(".")[2])
    scale = {"min": 60.0, "%": 0.01, "": 1.0}[unit]
    return float(number) * scale, 0.5 * 10.0**-digits * scale


def _labels(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(tuple(pair.split("=", 1)) for pair in text.split(",") if pair)  # type: ignore[misc]


def agree(cells: list[tuple[str, str, str]], exported: dict[Key, float]) -> int:
    """Check each page cell against its series; returns how many numbers were compared.
    A cell without a number ("–") must have no series: nothing measured."""
    compared = 0
    for metric, labels, text in cells:
        key = (metric, _labels(labels))
        if text == "–":
            assert key not in exported, (key, exported.get(key))
            continue
        value, tolerance = shown_value(text)
        assert value == pytest.approx(exported[key], abs=tolerance), (key, text)
        compared += 1
    return compared


def test_every_number_on_the_page_equals_its_series_on_metrics(served: Served) -> None:
    status, kind, html = _get(f"{served.base}/status")
    exported = metrics(served.base)
    assert status == 200
    assert kind == "text/html; charset=utf-8"

    cells = page_cells(html).cells
    assert agree(cells, exported) > 100
    # every series of the last window and every drift gauge is on the page
    shown = {(metric, _labels(labels)) for metric, labels, _ in cells}
    for name in (
        "arrive_online_p90_coverage",
        "arrive_online_p50_mae_seconds",
        "arrive_feature_psi",
    ):
        assert {key for key in exported if key[0] == name} <= shown, name


def test_the_alerts_are_the_series_metrics_flag(served: Served) -> None:
    exported = metrics(served.base)
    alerts = page_cells(served.page.render()).alerts
    flagged = sorted(
        ", ".join(f"{k}={v}" for k, v in labels)
        for (name, labels), value in exported.items()
        if name == "arrive_calibration_drift" and value == 1
    )
    assert flagged, "the random day has segments off the band"
    assert sorted(row[1] for row in alerts if row[0] == "CalibrationDrift") == flagged
    assert [row[:3] for row in alerts if row[0] != "CalibrationDrift"] == [
        ["FeatureDrift", "feature=distance_km, version=v1", "PSI 0.412"],
        ["FeatureSkew", "feature=local_hour", "4.5 %"],  # 0.0 is under the 1 % limit
    ]


def test_the_page_reads_the_windows_the_monitor_wrote(served: Served) -> None:
    history = QualityHistory(served.monitor.settings.out_dir)
    written = pl.concat(
        pl.read_parquet(p) for p in sorted(served.monitor.settings.out_dir.iterdir())
    )
    overall = written.filter(pl.col("segment_kind") == "all").sort("window_start", "version")
    assert (
        history.since(datetime(2000, 1, 1, tzinfo=UTC))
        .sort("window_start", "version")
        .equals(overall)
    )
    last = overall.get_column("window_start").max()
    assert isinstance(last, datetime)
    assert history.since(last).equals(overall.filter(pl.col("window_start") == last))


def _windows(flags: list[list[bool]]) -> pl.DataFrame:
    """Segment-all rows: one window per item, one variant per flag in it."""
    start = datetime(2025, 3, 3, tzinfo=UTC)
    rows = [
        {
            "window_start": start + timedelta(minutes=5 * index),
            "window_end": start + timedelta(minutes=5 * index + 5),
            "version": "v1",
            "variant": f"variant{number}",
            "segment_kind": "all",
            "segment": "all",
            "orders": 500,
            "calibration_drift": flag,
        }
        for index, window in enumerate(flags)
        for number, flag in enumerate(window)
    ]
    return (
        pl.DataFrame(rows)
        .with_columns(
            [
                pl.lit(None, dtype).alias(name)
                for name, dtype in QUALITY.items()
                if name not in rows[0]
            ]
        )
        .select(QUALITY.names())
        .cast(QUALITY)
    )


def test_the_calibration_budget_counts_windows_off_band_for_any_variant() -> None:
    # 10 windows; in two of them one of the two variants drifted
    flags = [[False, False]] * 8 + [[True, False], [False, True]]
    budget = calibration_budget(_windows(flags), 0.95)
    assert (budget.windows, budget.bad) == (10, 2)
    assert budget.spent == pytest.approx(0.2 / 0.05)
    page = StatusPage(
        CollectorRegistry(auto_describe=False),
        lambda start: _windows(flags),
        dict,
        ManualClock(datetime(2025, 3, 4, tzinfo=UTC)),
    ).render()
    assert "2 of 10" in page
    assert "400.0 %" in page
    assert "budget exhausted" in page


def test_a_monitor_without_windows_or_drift_gauges_says_so() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(lambda: ({}, pl.DataFrame(schema=QUALITY))))
    page = StatusPage(
        registry,
        lambda start: pl.DataFrame(schema=QUALITY),
        lambda: {"prediction log": None, "outcomes": None},
        ManualClock(datetime(2025, 3, 4, tzinfo=UTC)),
    ).render()
    assert "No closed window yet." in page
    assert "Not measured by this monitor (no drift gauges)." in page
    assert "no closed window in the last 3.0 d yet" in page


def test_status_is_a_404_without_a_page_and_a_one_line_500_when_it_fails() -> None:
    registry = CollectorRegistry(auto_describe=False)

    def broken() -> str:
        raise ValueError("no quality directory")

    plain = MetricsServer(registry, lambda: (True, "ok"), 0).start()
    failing = MetricsServer(registry, lambda: (True, "ok"), 0, status=broken).start()
    try:
        assert _get(f"http://127.0.0.1:{plain.port}/status")[0] == 404
        status, _, text = _get(f"http://127.0.0.1:{failing.port}/status")
    finally:
        plain.close()
        failing.close()
    assert (status, text) == (500, "status page failed: no quality directory\n")


RULES = {
    "groups": [
        {
            "name": "status-page-test",
            "rules": [
                {
                    "record": "arrive_slo:error_ratio:rate1h",
                    "expr": "vector(0.0004)",
                    "labels": {"slo": "availability"},
                },
                {
                    "record": "arrive_slo:error_ratio:rate3d",
                    "expr": "vector(0.0002)",
                    "labels": {"slo": "availability"},
                },
                {
                    "alert": "FeatureStoreDown",
                    "expr": "vector(1)",
                    "labels": {"severity": "page", "instance": "eta-1"},
                },
            ],
        }
    ]
}


def _quiet_page(prometheus: PrometheusApi) -> str:
    return StatusPage(
        CollectorRegistry(auto_describe=False),
        lambda start: pl.DataFrame(schema=QUALITY),
        dict,
        ManualClock(datetime(2025, 3, 4, tzinfo=UTC)),
        prometheus=prometheus,
    ).render()


def test_with_a_real_prometheus_the_page_shows_service_objectives_and_firing_alerts(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(json.dumps(RULES), encoding="utf-8")  # JSON is YAML
    with PrometheusServer(["127.0.0.1:1"], rule_files=[rules]) as prometheus:
        api = PrometheusApi(prometheus.url)
        wait_for(
            lambda: len(api.query(RATIOS)) == 2 and bool(api.query(FIRING)),
            60.0,
            "the rules' first evaluation",
        )
        page = _quiet_page(api)
    availability = page.split('id="slo-availability"', 1)[1].split("</tr>", 1)[0]
    assert "1 h 0.040 % · 3 d 0.020 %" in availability
    assert "20.0 % (3 d)" in availability  # 0.02 % of the 0.1 % allowed
    assert ">met<" in availability
    latency = page.split('id="slo-latency"', 1)[1].split("</tr>", 1)[0]
    assert "no data in Prometheus" in latency
    firing = page.split("Firing in Prometheus", 1)[1]
    assert "FeatureStoreDown</td><td>instance=eta-1</td><td>page</td>" in firing


def test_an_unreachable_prometheus_is_named_not_fatal() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    page = _quiet_page(PrometheusApi(url, timeout_s=1.0))
    assert f"Prometheus at {url} did not answer" in page
    assert "Objectives and error budget" in page


def test_a_plot_is_drawn_again_only_when_its_rows_change() -> None:
    drawn: list[int] = []

    def draw(key: str, rows: pl.DataFrame, band: Band) -> str:
        drawn.append(rows.height)
        return f"<svg>{key} {rows.height}</svg>"

    cache = PlotCache()
    ten = _windows([[False]] * 10)
    assert cache.get("windows", ten, Band(), draw) == "<svg>windows 10</svg>"
    assert cache.get("windows", ten.clone(), Band(), draw) == "<svg>windows 10</svg>"
    flipped = _windows([[False]] * 9 + [[True]])  # same size, one flag differs
    assert cache.get("windows", flipped, Band(), draw) == "<svg>windows 10</svg>"
    assert cache.get("windows", flipped, Band(0.9, 0.03), draw) == "<svg>windows 10</svg>"
    assert drawn == [10, 10, 10]


@pytest.mark.redis
def test_a_running_monitor_serves_its_status_page(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "log").mkdir()
    (tmp_path / "slo.toml").write_text("[calibration]\nobjective = 0.97\n", encoding="utf-8")
    port, silent = free_port(), free_port()
    command = [sys.executable, "-m", "arrive.cli", "monitor", "--log-dir", str(tmp_path / "log")]
    command += ["--source", f"{redis_url}?stream={unique_name('status')}"]
    command += ["--out", str(tmp_path / "quality"), "--checkpoint", str(tmp_path / "ck.msgpack")]
    command += ["--metrics-port", str(port), "--slo", str(tmp_path / "slo.toml")]
    command += ["--prometheus-url", f"http://127.0.0.1:{silent}", "--quiet"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz", proc), 60, "the monitor")
        status, kind, html = _get(f"http://127.0.0.1:{port}/status")
        exported = metrics(f"http://127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert (status, kind) == (200, "text/html; charset=utf-8"), err.decode()
    calibration = html.split('id="slo-calibration"', 1)[1].split("</tr>", 1)[0]
    assert "97.00 %" in calibration  # the objective of --slo
    assert f"Prometheus at http://127.0.0.1:{silent} did not answer" in html
    assert "No closed window yet." in html
    assert agree(page_cells(html).cells, exported) > 5  # the monitor's counters


def _answers(url: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(proc.communicate()[1].decode())
    try:
        return _get(url)[0] == 200
    except OSError:
        return False
