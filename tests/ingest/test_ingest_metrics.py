"""`arrive ingest --metrics-port`: a real ingest process on a real Redis stream, scraped over
HTTP. Every message shows up once in ``arrive_ingest_events_total`` under its outcome, dead
letters by reason, and the lag and checkpoint gauges appear once there is something to show."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from arrive.cli.main import run
from arrive.schema.codec import encode_event
from arrive.schema.events import OrderConfirmed, OrderCreated
from arrive.testing.servers.eta_service import wait_for
from arrive.testing.servers.ports import free_port
from arrive.testing.source_contract import unique_name

pytestmark = pytest.mark.redis

GROUP: Final = "g"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def events_total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return sum(v for (name, _), v in samples.items() if name == "arrive_ingest_events_total")


def _messages(now: datetime) -> list[bytes]:
    """Six events that apply, one duplicate, and three the runner or engine dead-letters."""
    start = now - timedelta(seconds=200)
    created = [
        OrderCreated(event_id=f"c{i}", event_time=start + timedelta(seconds=i), order_id=f"o{i}")
        for i in range(5)
    ]
    confirmed = OrderConfirmed(
        event_id="k0", event_time=start + timedelta(seconds=90), order_id="o0"
    )
    again = OrderCreated(
        event_id="c0-again", event_time=start + timedelta(seconds=91), order_id="o0"
    )
    late = OrderCreated(event_id="old", event_time=now - timedelta(hours=1), order_id="o9")
    future = OrderCreated(event_id="soon", event_time=now + timedelta(days=1), order_id="o8")
    good = [encode_event(e) for e in (*created, confirmed, again)]
    return [*good, encode_event(late), encode_event(future), b"{not json"]


@pytest.fixture
def ingest(redis_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, str]]:
    stream, port = unique_name("metrics"), free_port()
    command = [sys.executable, "-m", "arrive.cli", "ingest"]
    command += ["--source", f"{redis_url}?stream={stream}&group={GROUP}"]
    command += ["--dead-letter", str(tmp_path / "dead.jsonl"), "--state", str(tmp_path / "state")]
    command += ["--checkpoint-s", "0", "--no-idle-advance", "--quiet"]
    command += ["--metrics-port", str(port)]
    redis.Redis.from_url(redis_url).xgroup_create(stream, GROUP, id="0", mkstream=True)
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        yield proc, port, stream
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _listening(port: int, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        return True
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_running_ingest_exposes_what_it_did(
    ingest: tuple[subprocess.Popen[bytes], int, str], client: redis.Redis
) -> None:
    proc, port, stream = ingest
    started = datetime.now(UTC)
    wait_for(lambda: _listening(port, proc), 60, "the metrics port")
    assert proc.poll() is None, proc.communicate()[1].decode()
    before = scrape(port)
    assert events_total(before) == 0
    assert ("arrive_ingest_lag_seconds", ()) not in before  # nothing applied yet

    messages = _messages(started)
    for payload in messages:
        client.xadd(stream, {"event": payload})
    wait_for(lambda: events_total(scrape(port)) == len(messages), 60, "every message counted")
    samples = scrape(port)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("arrive_ingest_events_total", outcome="applied") == 6
    assert value("arrive_ingest_events_total", outcome="duplicate") == 1
    assert value("arrive_ingest_events_total", outcome="dead_lettered") == 3
    assert value("arrive_ingest_dead_letters_total", reason="invalid") == 2
    assert value("arrive_ingest_dead_letters_total", reason="late") == 1
    # the last applied event (the duplicate) happened 109 s before `started`
    assert value("arrive_ingest_lag_seconds") >= 109
    assert value("arrive_ingest_last_checkpoint_timestamp_seconds") >= started.timestamp()

    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "(stopped)" in err.decode()


def test_a_metrics_port_in_use_is_refused_in_one_line(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        source = f"{redis_url}?stream={unique_name('busy')}&group={GROUP}"
        args = ["ingest", "--source", source, "--metrics-port", str(port), "--quiet"]
        code = run([*args, "--dead-letter", str(tmp_path / "dead.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--metrics-port" in err
    assert "Traceback" not in err
