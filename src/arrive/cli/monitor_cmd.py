"""``arrive monitor``: join the prediction log to outcomes; online quality and calibration,
feature drift (with ``--registry``) and production skew (from a data directory's event log)."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from prometheus_client import CollectorRegistry
from rich.console import Console

from arrive.cli.progress import progress
from arrive.clock import SystemClock
from arrive.datadir import local_timezone, scan_events
from arrive.errors import ConfigError, InputFileError, SourceUnavailable
from arrive.ingest.endpoints import open_source
from arrive.ingest.files import FileReplaySource
from arrive.ingest.source import EventSource
from arrive.monitoring.baseline import HeuristicBaseline, registry_loader
from arrive.monitoring.join import JoinSettings
from arrive.monitoring.monitor import Monitor, MonitorSettings
from arrive.monitoring.monitor_drift import WindowDrift, registry_profiles
from arrive.monitoring.monitor_http import MetricsServer, MonitorCollector
from arrive.monitoring.monitor_rollout import RolloutSettings, RolloutWatch
from arrive.monitoring.monitor_skew import SkewCheck, SkewSettings
from arrive.monitoring.prometheus_api import PrometheusApi
from arrive.monitoring.quality import Band
from arrive.monitoring.slo import SloConfig, load_slo
from arrive.monitoring.status_page import StatusPage
from arrive.monitoring.status_state import QualityHistory
from arrive.registry import LocalRegistry
from arrive.rollout.control import Rollouts

logger = logging.getLogger(__name__)
_DIR = click.Path(file_okay=False, path_type=Path)
_FILE = click.Path(dir_okay=False, path_type=Path)
CATCH_UP_FILES = 8
"""A backlog of more log files than this shows a progress bar."""


@click.command("monitor")
@click.option("--log-dir", required=True, type=_DIR, help="The service's prediction-log directory.")
@click.option(
    "--source",
    required=True,
    help="Outcome events: a data directory (replay), redis://HOST:PORT/DB?stream=S[&group=G] "
    "or kafka://HOST:PORT?topic=T[&group=G] (group default: arrive-monitor).",
)
@click.option(
    "--out",
    type=_DIR,
    default=Path("monitor/quality"),
    show_default=True,
    help="Directory of the quality Parquet files (one row per window × segment).",
)
@click.option(
    "--checkpoint",
    type=_FILE,
    default=Path("monitor/checkpoint.msgpack"),
    show_default=True,
    help="Checkpoint file: resumed from at start, replaced after every step.",
)
@click.option(
    "--horizon-s",
    type=float,
    default=7200.0,
    show_default=True,
    help="Longest wait for an outcome after its prediction (later ones count as too_late); "
    "keep it above the log's rotation period.",
)
@click.option("--window-s", type=float, default=300.0, show_default=True, help="Window length.")
@click.option(
    "--coverage-target", type=float, default=0.90, show_default=True, help="P90 coverage aimed at."
)
@click.option(
    "--coverage-tolerance",
    type=float,
    default=0.02,
    show_default=True,
    help="Calibration band half-width: drift when the 95 % interval lies wholly outside.",
)
@click.option("--timezone", help="Marketplace IANA zone (default: the data directory's, or UTC).")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve /metrics and /healthz on this port (0: any free port; default: none).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Interface.")
@click.option(
    "--slo",
    "slo_file",
    type=_FILE,
    help="SLO file of the objectives /status shows (default: the shipped slo.toml).",
)
@click.option(
    "--prometheus-url",
    help="Prometheus server (http://HOST:PORT) /status reads the service-side objectives' "
    "error ratios and firing alerts from (default: none; the page names the queries).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=5000,
    show_default=True,
    help="Most events per poll.",
)
@click.option(
    "--idle-lag-s",
    type=float,
    help="On an idle stream, move event time to now minus this, so windows close "
    "(default: the horizon for redis:// and kafka://; never for a data directory).",
)
@click.option(
    "--registry",
    type=_DIR,
    help="Model registry: the heuristic stored with each model version gives the "
    "heuristic's MAE on the model's own orders (default: only on the heuristic's answers), "
    "its reference profile the feature drift (default: no drift), and its active rollout "
    "is judged on the joined outcomes and moved (rolled back, ramped, promoted).",
)
@click.option(
    "--drift-threshold",
    type=float,
    default=0.2,
    show_default=True,
    help="PSI above which a feature has drifted.",
)
@click.option(
    "--drift-min-orders",
    type=int,
    default=500,
    show_default=True,
    help="Fewest orders served with features in a window for a feature to be called drifted.",
)
@click.option(
    "--events-dir",
    type=_DIR,
    help="Data directory whose event log covers the served orders: a sample of answers is "
    "recomputed from it offline (skew). Default: --source when it is a data directory; "
    "with a stream and none, skew is off.",
)
@click.option(
    "--skew-every-min",
    type=float,
    default=15.0,
    show_default=True,
    help="Minutes between two skew checks.",
)
@click.option(
    "--skew-sample",
    type=int,
    default=1000,
    show_default=True,
    help="Most answers recomputed per skew check.",
)
@click.option(
    "--rollout-interval-s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between two guardrail evaluations of the registry's active rollout "
    "(with --registry; a breach rolls back, a pass with enough evidence ramps).",
)
@click.option("--quiet", is_flag=True, help="No progress bar or status line.")
def command(
    log_dir: Path,
    source: str,
    out: Path,
    checkpoint: Path,
    horizon_s: float,
    window_s: float,
    coverage_target: float,
    coverage_tolerance: float,
    timezone: str | None,
    metrics_port: int | None,
    metrics_host: str,
    slo_file: Path | None,
    prometheus_url: str | None,
    batch_size: int,
    idle_lag_s: float | None,
    registry: Path | None,
    drift_threshold: float,
    drift_min_orders: int,
    events_dir: Path | None,
    skew_every_min: float,
    skew_sample: int,
    rollout_interval_s: float,
    quiet: bool,
) -> None:
    """Join each prediction of --log-dir to its order's outcome from --source, and write
    online quality per window × model version × variant × segment to --out.

    A data directory is replayed to its end, then every window is closed; a stream is
    followed until SIGTERM or Ctrl-C. Restarts resume from --checkpoint exactly.
    """
    if not log_dir.is_dir():
        raise ConfigError(f"--log-dir {log_dir}: no such directory")
    replay = Path(source).is_dir()
    settings = MonitorSettings(
        log_dir=log_dir,
        out_dir=out,
        checkpoint=checkpoint,
        join=_join_settings(horizon_s, window_s),
        band=_band(coverage_target, coverage_tolerance),
        timezone=_zone(timezone, Path(source) if replay else None),
        batch_size=batch_size,
        idle_lag_s=_idle_lag(idle_lag_s, horizon_s, replay),
        partitions=1 if replay else _partitions(source),
    )
    slo = _slo(slo_file)
    prometheus = _prometheus(prometheus_url)
    baseline = _baseline(registry, settings.timezone)
    drift = _drift(registry, window_s, drift_threshold, drift_min_orders)
    clock = SystemClock()
    skew_dir = _events_dir(events_dir, Path(source) if replay else None)
    skew = _skew(skew_dir, skew_every_min, skew_sample, clock, settings.timezone)
    watch = _rollout(registry, rollout_interval_s, clock)
    events = _open(source, checkpoint, replay)
    monitor = Monitor(
        settings, events, clock, baseline=baseline, drift=drift, skew=skew, rollout=watch
    )
    console = Console(stderr=True, highlight=False)
    if monitor.resume() and not quiet:
        console.print(f"resumed from {checkpoint}")
    health = _health(
        None if drift else "drift off: no --registry",
        None if skew else "skew off: --source is a stream and no --events-dir was given",
    )
    status = StatusSettings(slo, prometheus, health)
    server = _serve(monitor, status, metrics_port, metrics_host, console)
    stop = _stop_on_signals()
    try:
        _catch_up(monitor, stop, quiet)
        _follow(monitor, stop, replay, console, quiet)
    finally:
        events.close()
        if server is not None:
            server.close()
    console.print(_line(monitor) + (" (stopped)" if stop else " (done)"))


def _join_settings(horizon_s: float, window_s: float) -> JoinSettings:
    if not horizon_s > 0:
        raise ConfigError(f"--horizon-s: must be > 0, got {horizon_s}")
    if not window_s > 0:
        raise ConfigError(f"--window-s: must be > 0, got {window_s}")
    return JoinSettings(horizon_s=horizon_s, window_s=window_s)


def _band(target: float, tolerance: float) -> Band:
    if not 0 < target < 1:
        raise ConfigError(f"--coverage-target: must lie in (0, 1), got {target}")
    if not 0 < tolerance < min(target, 1 - target):
        raise ConfigError(
            f"--coverage-tolerance: must be > 0 and keep the band within (0, 1), got {tolerance}"
        )
    return Band(target, tolerance)


def _zone(timezone: str | None, data_dir: Path | None) -> str:
    zone = timezone or (local_timezone(data_dir) if data_dir else "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone {zone}: not an IANA zone (e.g. Europe/Berlin)") from None
    return zone


def _idle_lag(idle_lag_s: float | None, horizon_s: float, replay: bool) -> float | None:
    if idle_lag_s is not None and replay:
        raise ConfigError("--idle-lag-s: a data directory is a replay of past events")
    if idle_lag_s is not None and not idle_lag_s >= 0:
        raise ConfigError(f"--idle-lag-s: must be >= 0, got {idle_lag_s}")
    if replay:
        return None
    return horizon_s if idle_lag_s is None else idle_lag_s


def _slo(path: Path | None) -> SloConfig:
    try:
        return load_slo(path)
    except ConfigError as exc:
        raise ConfigError(f"--slo: {exc}") from None


def _prometheus(url: str | None) -> PrometheusApi | None:
    if url is None:
        return None
    try:
        return PrometheusApi(url)
    except ConfigError as exc:
        raise ConfigError(f"--prometheus-url {exc}") from None


def _baseline(registry: Path | None, timezone: str) -> HeuristicBaseline | None:
    if registry is None:
        return None
    if not registry.is_dir():
        raise ConfigError(f"--registry {registry}: no such directory")
    return HeuristicBaseline(registry_loader(LocalRegistry(registry)), timezone)


def _drift(
    registry: Path | None, window_s: float, threshold: float, min_orders: int
) -> WindowDrift | None:
    if not threshold > 0:
        raise ConfigError(f"--drift-threshold: must be > 0, got {threshold}")
    if min_orders < 1:
        raise ConfigError(f"--drift-min-orders: must be at least 1, got {min_orders}")
    if registry is None:
        return None
    load = registry_profiles(LocalRegistry(registry))
    return WindowDrift(load, window_s, threshold=threshold, min_orders=min_orders)


def _rollout(registry: Path | None, interval_s: float, clock: SystemClock) -> RolloutWatch | None:
    if not interval_s > 0:
        raise ConfigError(f"--rollout-interval-s: must be > 0, got {interval_s}")
    if registry is None:
        return None
    rollouts = Rollouts(LocalRegistry(registry, clock=clock), clock=clock)
    return RolloutWatch(rollouts, clock, RolloutSettings(interval_s=interval_s))


def _events_dir(events_dir: Path | None, data_dir: Path | None) -> Path | None:
    if events_dir is None:
        return data_dir
    try:
        scan_events(events_dir)
    except InputFileError as exc:
        raise ConfigError(f"--events-dir {events_dir}: no event log there ({exc})") from None
    return events_dir


def _skew(
    events_dir: Path | None, every_min: float, sample: int, clock: SystemClock, timezone: str
) -> SkewCheck | None:
    if not every_min > 0:
        raise ConfigError(f"--skew-every-min: must be > 0, got {every_min}")
    if sample < 1:
        raise ConfigError(f"--skew-sample: must be at least 1, got {sample}")
    if events_dir is None:
        return None
    return SkewCheck(SkewSettings(events_dir, every_min * 60, sample), clock, timezone)


def _health(*off: str | None) -> Callable[[], tuple[bool, str]]:
    """``/healthz``: ok, naming what is off and why."""
    message = "; ".join(["ok", *(o for o in off if o)])
    return lambda: (True, message)


def _partitions(source: str) -> int:
    """A Kafka topic's partition count (the monitor waits to hear from each); else 1."""
    parts = urlsplit(source)
    topic = parse_qs(parts.query).get("topic", [""])[-1]
    if parts.scheme != "kafka" or not topic:
        return 1
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        found = AdminClient({"bootstrap.servers": parts.netloc}).list_topics(topic, timeout=10)
    except KafkaException as exc:
        raise SourceUnavailable(f"--source {source}: {exc}") from exc
    meta = found.topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise ConfigError(f"--source {source}: no topic {topic} on {parts.netloc}")
    return len(meta.partitions)


def _open(source: str, checkpoint: Path, replay: bool) -> EventSource:
    """The outcome source; a replay keeps its position beside the checkpoint."""
    if replay:
        return FileReplaySource(
            Path(source), checkpoint=checkpoint.with_name(f"{checkpoint.name}.source")
        )
    parts = urlsplit(source)
    if parts.scheme in ("redis", "rediss", "unix", "kafka") and "group" not in parse_qs(
        parts.query
    ):
        source = f"{source}{'&' if parts.query else '?'}group=arrive-monitor"
    if parts.scheme in ("", "file"):
        raise ConfigError(f"--source {source}: no such data directory")
    return open_source(source)


@dataclass(frozen=True)
class StatusSettings:
    """What ``/status`` and ``/healthz`` show beyond the monitor's own figures."""

    slo: SloConfig
    prometheus: PrometheusApi | None
    health: Callable[[], tuple[bool, str]]


def _serve(
    monitor: Monitor, status: StatusSettings, port: int | None, host: str, console: Console
) -> MetricsServer | None:
    if port is None:
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(lambda: (monitor.counts, monitor.latest)))
    registry.register(monitor.gauges)
    if monitor.rollout is not None:
        registry.register(monitor.rollout.metrics)
    page = StatusPage(
        registry,
        QualityHistory(monitor.settings.out_dir).since,
        monitor.watermarks,
        monitor.clock,
        band=monitor.settings.band,
        slo=status.slo,
        prometheus=status.prometheus,
    )
    try:
        server = MetricsServer(registry, status.health, port, host, status=page.render)
    except OSError as exc:
        raise ConfigError(f"--metrics-port {port}: cannot listen on {host} ({exc})") from exc
    server.start()
    console.print(f"metrics on http://{host}:{server.port}/metrics, status on /status")
    return server


def _catch_up(monitor: Monitor, stop: list[bool], quiet: bool) -> None:
    """Read a large backlog of log files with a progress bar."""
    backlog = monitor.backlog()
    if backlog <= CATCH_UP_FILES:
        return
    logger.info("catching up on %d prediction-log files", backlog)
    with progress(quiet=quiet) as bar:
        task = bar.add_task("catching up: log files", total=backlog)
        while not stop and (left := monitor.backlog()):
            monitor.step()
            bar.update(task, completed=backlog - left)
        bar.update(task, completed=backlog)


def _follow(
    monitor: Monitor, stop: list[bool], replay: bool, console: Console, quiet: bool
) -> None:
    shown = time.monotonic()
    with console.status("", spinner="dots") as status:
        while not stop:
            handled = monitor.step()
            if replay and not handled and monitor.source.exhausted and not monitor.backlog():
                monitor.finish()
                return
            if not quiet and time.monotonic() - shown >= 0.5:
                shown = time.monotonic()
                status.update(_line(monitor))


def _line(monitor: Monitor) -> str:
    counts = monitor.counts
    joined = sum(v for k, v in counts.items() if k.startswith("joined:"))
    closed = monitor.join.state.closed_until
    return (
        f"{joined:,} predictions joined, {counts.get('outcome:unknown_order', 0):,} unknown "
        f"orders, {counts.get('outcome:too_late', 0):,} too late, "
        f"{counts.get('expired', 0):,} expired; windows closed until "
        f"{closed.isoformat() if closed else '-'}"
    )


def _stop_on_signals() -> list[bool]:
    """A flag (a non-empty list once stopped) set by SIGTERM and SIGINT."""
    flag: list[bool] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        flag.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return flag
