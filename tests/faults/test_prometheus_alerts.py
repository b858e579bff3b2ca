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
  what a 1 s evaluation shows first), not in the market delivered as predicted;
* served distances 1.5 times those of the model's training profile (from ``--registry``)
  set that feature's PSI above its threshold and send ``FeatureDrift`` pending for it
  alone, not for the inputs served as in training;
* a second monitor follows the log of a service whose local hour is one hour ahead
  (:class:`~arrive.testing.served_log.ShiftedHour`), recomputes a sample of its answers
  from the event log (``--events-dir``) and sends ``FeatureSkew`` pending for
  ``hour_local`` alone.

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

import polars as pl
import pytest

from arrive.clock import ManualClock
from arrive.errors import InternalError
from arrive.ingest.redis_streams import RedisStreamProducer
from arrive.models.profile import PROFILE_FILE, profile_of
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.monitoring.rules import rule_files
from arrive.monitoring.slo import load_slo
from arrive.registry import LocalRegistry
from arrive.schema.events import Delivered, Event, OrderCreated
from arrive.testing.factories import random_marketplace, write_data_dir
from arrive.testing.served_log import ZONE, ShiftedHour, serve_and_log
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
KM_SHIFT = 1.5  # served distances 1.5 × those of the training profile
KINDS = {"store_delivery_count_28d": "numeric", "distance_km": "numeric", "items": "numeric"}


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


def _vector(rng: random.Random, km_scale: float) -> dict[str, float]:
    """One served feature vector; ``km_scale`` shifts the distance's distribution."""
    return {
        "store_delivery_count_28d": 50.0,
        "distance_km": rng.gammavariate(2.0, 1.5) * km_scale,
        "items": float(rng.randint(1, 5)),
    }


def _registry(directory: Path) -> Path:
    """A registry whose version 1 carries the training profile of unshifted vectors."""
    rng = random.Random(0)
    training = [_vector(rng, 1.0) for _ in range(20_000)]
    profile = profile_of(pl.DataFrame(training), KINDS)
    LocalRegistry(directory).register({PROFILE_FILE: profile.to_bytes()}, {})
    return directory


def _replay(directory: Path, start: datetime, seed: int = 20) -> Replay:
    """Answers spread over the hour from ``start``, each order delivered once; every
    answer's distance is shifted (:data:`KM_SHIFT`)."""
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
                    ["1"],
                    [_vector(rng, KM_SHIFT)],
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
        *("--registry", str(_registry(work / "registry"))),
    ]
    process = MonitorProcess(args, free_port(), work)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def skew_monitor(
    outcome_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MonitorProcess]:
    """A monitor following the log of a service whose local hour is one hour ahead; its
    skew check (every 1.2 s) recomputes the answers from the data directory's events."""
    work = tmp_path_factory.mktemp("skew-monitor")
    market = random_marketplace(7, n_orders=200, days=2)
    data_dir = write_data_dir(work / "data", market, ZONE)
    serve_and_log(data_dir, work / "log", reader_class=ShiftedHour)
    args = [
        *("--log-dir", str(work / "log")),
        *("--source", f"{outcome_redis.url}?stream=skew-outcomes"),
        *("--out", str(work / "quality"), "--checkpoint", str(work / "checkpoint.msgpack")),
        *("--events-dir", str(data_dir), "--timezone", ZONE),
        *("--skew-every-min", "0.02", "--skew-sample", "1000"),
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
    service: ServiceProbe,
    monitor: MonitorProcess,
    skew_monitor: MonitorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusServer]:
    """One Prometheus scraping the service and both monitors with the generated rules."""
    directory = tmp_path_factory.mktemp("rules")
    rules = []
    for name, text in rule_files(load_slo(), "test").items():
        rules.append(directory / name)
        rules[-1].write_text(text, encoding="utf-8")
    targets = [_target(service), monitor.target, skew_monitor.target]
    with PrometheusServer(targets, rule_files=rules) as server:
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


def test_served_distances_shifted_from_training_send_feature_drift_pending_for_it_alone(
    monitor: MonitorProcess, prometheus: PrometheusServer
) -> None:
    at = f'instance="{monitor.target}",version="1"'

    def drift_pending() -> bool:
        return bool(_alerts(prometheus, "FeatureDrift"))

    _until(drift_pending, "FeatureDrift pending")
    alerts = _alerts(prometheus, "FeatureDrift")
    psi = {f: _value(prometheus, f'arrive_feature_psi{{{at},feature="{f}"}}') for f in KINDS}
    flags = {f: _value(prometheus, f'arrive_feature_drift{{{at},feature="{f}"}}') for f in KINDS}

    assert flags == {"store_delivery_count_28d": 0.0, "distance_km": 1.0, "items": 0.0}
    assert psi["distance_km"] is not None
    assert psi["distance_km"] > 0.2  # the monitor's default threshold
    assert [(a["labels"]["feature"], a["labels"]["version"]) for a in alerts] == [
        ("distance_km", "1")
    ]
    assert [a["state"] for a in alerts] == ["pending"]  # `for: 30m` has not passed
    assert alerts[0]["labels"]["severity"] == "ticket"
    assert alerts[0]["annotations"]["runbook_url"] == "docs/runbooks/FeatureDrift.md"


def test_a_local_hour_served_one_hour_ahead_sends_feature_skew_pending_for_it_alone(
    skew_monitor: MonitorProcess, prometheus: PrometheusServer
) -> None:
    at = f'instance="{skew_monitor.target}"'
    ratios = f"arrive_feature_skew_mismatch_ratio{{{at}}}"

    _until(lambda: bool(_alerts(prometheus, "FeatureSkew")), "FeatureSkew pending")
    alerts = _alerts(prometheus, "FeatureSkew")
    measured = {r["metric"]["feature"]: float(r["value"][1]) for r in prometheus.query(ratios)}

    assert measured.pop("hour_local") == 1.0
    assert len(measured) > 30  # every other feature was compared ...
    assert {feature: ratio for feature, ratio in measured.items() if ratio} == {}  # ... equal
    assert [a["labels"]["feature"] for a in alerts] == ["hour_local"]
    assert [a["state"] for a in alerts] == ["pending"]  # `for: 15m` has not passed
    assert alerts[0]["labels"]["severity"] == "page"
    assert alerts[0]["annotations"]["runbook_url"] == "docs/runbooks/FeatureSkew.md"
