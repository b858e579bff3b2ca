"""The generated rules in a real ``prometheus`` scraping a real ``arrive serve`` and a
real ``arrive monitor``, one of each for the module:

* the recording rules compute the objectives from the service's own metrics, and
  killing the Redis store sends ``FeatureStoreDown`` pending, then clears it when Redis
  is back;
* the monitor's series are scraped, and a monitor killed (SIGKILL) and started again
  while scraped is ``up`` again with counters that never went backwards (restored
  from its checkpoint);
* delivery times shifted by +20 % in one market set ``arrive_calibration_drift`` there
  and send ``CalibrationDrift`` pending (the shipped ``for: 15m`` is kept: pending is
  what a 1 s evaluation shows first), not in the market delivered as predicted.

Prometheus runs with 1 s scrape and evaluation intervals, its own temporary storage,
on a free port (:class:`~arrive.testing.servers.prometheus_server.PrometheusServer`).
The monitor follows a prediction log written by the service's own writer
(:class:`~arrive.monitoring.prediction_log.PredictionLog`) four hours back, and reads
its outcomes from a Redis Stream of its own redis-server (the store's is killed).
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest

from arrive.clock import ManualClock
from arrive.errors import InternalError
from arrive.ingest.redis_streams import RedisStreamProducer
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.monitoring.rules import rule_files
from arrive.monitoring.slo import load_slo
from arrive.schema.events import Delivered, Event, OrderCreated
from arrive.testing.servers.eta_service import ServiceProbe
from arrive.testing.servers.ports import answers_ok, free_port
from arrive.testing.servers.processes import terminate
from arrive.testing.servers.prometheus_server import PrometheusServer
from arrive.testing.servers.redis_server import RedisServer

pytestmark = [
    pytest.mark.redis,
    pytest.mark.faults,
    pytest.mark.usefixtures("require_prometheus"),
]

ORDERS_PER_MARKET = 1000
SHIFT = 1.2  # delivery times +20 % in market m1
P90_RATIO = 1.5  # each answer's P90 is 1.5 × its P50
# Unshifted durations are P50 × a log-normal of median 1 whose 90th percentile is the
# P90 (calibrated answers); m1's are that × SHIFT.
SIGMA = math.log(P90_RATIO) / NormalDist().inv_cdf(0.9)


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    """Poll ``condition`` every 0.25 s (Prometheus works in 1 s steps) until it holds."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise InternalError(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.25)


def _alerts(prometheus: PrometheusServer, name: str) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts() if a["labels"]["alertname"] == name]


def _value(prometheus: PrometheusServer, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


@dataclass(frozen=True)
class Replay:
    """The hand-made prediction log and its outcome events (one market shifted)."""

    log_dir: Path
    events: list[Event]
    orders: int


def _replay(directory: Path, start: datetime, seed: int = 20) -> Replay:
    """Answers spread over the hour from ``start``, each order delivered once."""
    rng = random.Random(seed)
    log = PredictionLog(directory, ManualClock(start))
    events: list[Event] = []
    for market, shift in (("m1", SHIFT), ("m2", 1.0)):
        quantiles = [(i + 0.5) / ORDERS_PER_MARKET for i in range(ORDERS_PER_MARKET)]
        rng.shuffle(quantiles)  # stratified: the realised coverage is the intended one
        for index, quantile in enumerate(quantiles):
            order = f"{market}-{index:04d}"
            at = start + timedelta(seconds=rng.uniform(0, 3500))
            p50 = rng.uniform(600, 1200)
            actual = p50 * math.exp(SIGMA * NormalDist().inv_cdf(quantile)) * shift
            log.extend(
                Predictions(
                    [f"r-{order}"],
                    [order],
                    at,
                    ["production"],
                    ["v1"],
                    [{"store_delivery_count_28d": 50}],
                    [p50],
                    [p50 * P90_RATIO],
                    [None],
                )
            )
            events.append(
                OrderCreated(
                    event_id=f"c-{order}",
                    event_time=at,
                    order_id=order,
                    store_id="s1",
                    market_id=market,
                    store_category="pizza",
                )
            )
            events.append(
                Delivered(
                    event_id=f"d-{order}", event_time=at + timedelta(seconds=actual), order_id=order
                )
            )
    log.close()
    events.sort(key=lambda e: (e.event_time, e.event_id))
    return Replay(directory, events, 2 * ORDERS_PER_MARKET)


class MonitorProcess:
    """``arrive monitor`` as a child process on a fixed metrics port (kept across restarts)."""

    def __init__(self, args: list[str], port: int, workdir: Path) -> None:
        self.args = [*args, "--metrics-port", str(port), "--idle-lag-s", "0", "--quiet"]
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        self.starts += 1
        log = self.workdir / f"monitor-{self.starts}.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "arrive.cli", "monitor", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )

        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise InternalError(f"arrive monitor exited:\n{log.read_text(errors='replace')}")
            return answers_ok(f"http://{self.target}/healthz")

        _until(ready, "arrive monitor to serve /healthz", timeout_s)

    def kill(self) -> None:
        """SIGKILL: no chance to save anything beyond its last checkpoint."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            terminate(proc)


@pytest.fixture(scope="module")
def outcome_redis() -> Iterator[RedisServer]:
    """The monitor's own redis-server for the outcome stream (the store's gets killed)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    hour = 3600
    now = int(datetime.now(UTC).timestamp())
    start = datetime.fromtimestamp(now // hour * hour - 4 * hour, UTC)  # one closed window
    return _replay(tmp_path_factory.mktemp("monitor") / "log", start)


@pytest.fixture(scope="module")
def monitor(
    replay: Replay, outcome_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MonitorProcess]:
    producer = RedisStreamProducer(outcome_redis.url, "outcomes")
    producer.publish(replay.events)
    producer.close()
    work = tmp_path_factory.mktemp("monitor-run")
    args = [
        *("--log-dir", str(replay.log_dir)),
        *("--source", f"{outcome_redis.url}?stream=outcomes"),
        *("--out", str(work / "quality"), "--checkpoint", str(work / "checkpoint.msgpack")),
        *("--window-s", "3600"),
    ]
    process = MonitorProcess(args, free_port(), work)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def service(start_module_service: Callable[..., ServiceProbe], redis: RedisServer) -> ServiceProbe:
    return start_module_service({"ARRIVE_STORE_URL": redis.url})


@pytest.fixture(scope="module")
def prometheus(
    service: ServiceProbe, monitor: MonitorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """One Prometheus scraping the service and the monitor with the generated rules."""
    directory = tmp_path_factory.mktemp("rules")
    rules = []
    for name, text in rule_files(load_slo(), "test").items():
        rules.append(directory / name)
        rules[-1].write_text(text, encoding="utf-8")
    with PrometheusServer([_target(service), monitor.target], rule_files=rules) as server:
        yield server


def _target(service: ServiceProbe) -> str:
    return service.url.removeprefix("http://")


def test_killing_the_store_sends_feature_store_down_pending_then_it_clears(
    service: ServiceProbe, prometheus: PrometheusServer, redis: RedisServer, fault_data: Any
) -> None:
    target = _target(service)
    orders = fault_data.orders[:20]
    eta_answers = f'sum(arrive_http_requests_total{{route="/v1/eta",instance="{target}"}})'
    already = _value(prometheus, eta_answers) or 0.0
    for order in orders:
        assert service.eta(order)["fallback"] is None
    _until(
        lambda: _value(prometheus, eta_answers) == already + len(orders),
        "the ETA answers scraped",
    )
    ratio = 'arrive_slo:error_ratio:rate5m{slo="availability"}'

    def answered_and_recorded() -> bool:  # a rate needs answers between two scrapes
        service.eta(orders[0])
        value = _value(prometheus, ratio)
        return value is not None and not math.isnan(value)

    _until(answered_and_recorded, "the recording rules to run on the scraped series")
    availability = _value(prometheus, ratio)
    before = _alerts(prometheus, "FeatureStoreDown")

    port = redis.port
    redis.stop()
    try:
        _until(lambda: bool(_alerts(prometheus, "FeatureStoreDown")), "FeatureStoreDown pending")
        down = _alerts(prometheus, "FeatureStoreDown")
        answer = service.eta(orders[0])
    finally:
        redis.start(port=port)
    _until(lambda: not _alerts(prometheus, "FeatureStoreDown"), "FeatureStoreDown to clear")

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


def test_the_monitor_is_scraped_and_a_restart_keeps_its_counters(
    monitor: MonitorProcess, prometheus: PrometheusServer, replay: Replay
) -> None:
    at = f'instance="{monitor.target}"'
    joined = f"sum(arrive_monitor_joined_total{{{at}}})"
    coverage = f'arrive_online_p90_coverage{{{at},segment_kind="all",variant="production"}}'
    _until(lambda: _value(prometheus, joined) == replay.orders, "every order joined, scraped")
    _until(lambda: _value(prometheus, coverage) is not None, "the last window's coverage")
    before = _value(prometheus, coverage)

    monitor.kill()
    _until(lambda: _value(prometheus, f"up{{{at}}}") == 0, "Prometheus to see the monitor down")
    monitor.start()
    _until(lambda: _value(prometheus, f"up{{{at}}}") == 1, "the monitor up again")
    # the scrape that set `up` to 1 also holds the restarted monitor's counters
    after = _value(prometheus, joined)
    resets = _value(prometheus, f"sum(resets(arrive_monitor_joined_total{{{at}}}[10m]))")
    outcome_resets = _value(prometheus, f"sum(resets(arrive_monitor_outcomes_total{{{at}}}[10m]))")

    assert monitor.starts == 2
    assert after == replay.orders  # restored from the checkpoint: not lost, not counted twice
    assert resets == 0.0
    assert outcome_resets == 0.0
    assert _value(prometheus, coverage) == before  # the last window's figures, from its file


def test_delivery_times_shifted_by_a_fifth_send_calibration_drift_pending(
    monitor: MonitorProcess, prometheus: PrometheusServer
) -> None:
    at = f'instance="{monitor.target}",segment_kind="market"'

    def drift_pending() -> bool:
        return any(
            a["labels"].get("segment") == "m1" for a in _alerts(prometheus, "CalibrationDrift")
        )

    _until(drift_pending, "CalibrationDrift pending for market m1")
    alerts = _alerts(prometheus, "CalibrationDrift")
    m1 = [a for a in alerts if a["labels"]["segment_kind"] == "market"]
    drift = {
        m: _value(prometheus, f'arrive_calibration_drift{{{at},segment="{m}"}}')
        for m in ("m1", "m2")
    }
    coverage = {
        m: _value(prometheus, f'arrive_online_p90_coverage{{{at},segment="{m}"}}')
        for m in ("m1", "m2")
    }
    shifted_overall = [a for a in alerts if a["labels"]["segment_kind"] == "all"]

    assert drift == {"m1": 1.0, "m2": 0.0}
    assert coverage["m1"] is not None
    assert coverage["m1"] < 0.88
    assert coverage["m2"] is not None
    assert 0.88 <= coverage["m2"] <= 0.92
    assert [a["labels"]["segment"] for a in m1] == ["m1"]  # not the market delivered on time
    assert [a["state"] for a in m1] == ["pending"]  # `for: 15m` has not passed
    assert m1[0]["labels"]["severity"] == "ticket"
    assert m1[0]["annotations"]["runbook_url"] == "docs/runbooks/CalibrationDrift.md"
    assert len(shifted_overall) == 1  # half the orders late: the whole drifts too
