"""``arrive serve``: options and settings errors in-process, and the real command in a child
process with two workers, talked to over HTTP and stopped with SIGTERM."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.mmap_dict import MmapedDict

from arrive.cli.main import run
from arrive.monitoring.metrics import MULTIPROC_ENV
from arrive.registry import LocalRegistry
from arrive.testing.servers.eta_service import ServeProcess, wait_for
from arrive.testing.servers.ports import free_port


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--workers", "--store", "--registry", "--replay-dir"):
        assert option in out
    assert "--config" in out
    assert "ARRIVE_" in out


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--port", "0"], {}, "setting port (from option)"),
        (["--workers", "0"], {}, "setting workers"),
        ([], {"ARRIVE_WORKERS": "many"}, "setting workers (from ARRIVE_WORKERS)"),
        ([], {"ARRIVE_STORE_URL": "postgres://db"}, "setting store_url"),
        ([], {"ARRIVE_ADMIN_TOKEN": "short"}, "setting admin_token"),
        ([], {"ARRIVE_DEADLINE_MS": "-1"}, "setting deadline_ms"),
        # refused before any worker starts (a worker's startup would print a traceback)
        ([], {"ARRIVE_KILL_SWITCH_FILE": "/nonexistent/dir/ks"}, "setting kill_switch_file"),
        (["--replay-dir", "/nonexistent/replay"], {}, "no event log here"),
        (["--registry", __file__], {}, "setting registry_dir: registry"),
        ([], {"ARRIVE_MAX_HEADERS": "3"}, "setting max_headers (from ARRIVE_MAX_HEADERS)"),
        ([], {"ARRIVE_HEADER_TIMEOUT_S": "0"}, "setting header_timeout_s"),
    ],
)
def test_bad_settings_are_one_line_naming_the_setting(
    args: list[str],
    env: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_taken_port_is_one_line_for_several_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:  # another service, listening with SO_REUSEPORT
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code = run(["serve", "--workers", "2", "--port", port, "--registry", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"settings host, port: cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_bad_config_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "arrive.toml"
    config.write_text("port = 8080\nwokers = 2\n")
    assert run(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "unknown setting 'wokers'" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_arrive_serve_answers_over_http_and_stops_gracefully(
    tmp_path: Path,
    trained: Any,
    local_registry: Callable[[int], LocalRegistry],
    orders: list[dict[str, Any]],
    admin_token: str,
) -> None:
    registry = local_registry(2)
    env = {
        "ARRIVE_REGISTRY_DIR": str(registry.root),
        "ARRIVE_REPLAY_DIR": str(trained.data_dir),
        "ARRIVE_COMPILE_BACKEND": "none",
        "ARRIVE_PREDICTION_LOG_DIR": str(tmp_path / "predictions"),
        "ARRIVE_RELOAD_INTERVAL_S": "0",
        "ARRIVE_LOG_LEVEL": "warning",
        "ARRIVE_ADMIN_TOKEN": admin_token,
        MULTIPROC_ENV: str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    service = ServeProcess(env, workers=2, log_path=tmp_path / "serve.log")
    with service:
        service.wait_ready()
        # a client's keep-alive connections, opened at once: each worker listens on a
        # socket of its own, so they spread over both (with one shared socket, the
        # worker that woke first could accept them all)
        wait_for(lambda: _listening(service.port) == 2, 60, "both workers listening")
        spread = _answers_by_worker(service.port, tmp_path / "metrics", orders[0], 32)
        with httpx2.Client(base_url=service.url, timeout=10.0) as client:
            answers = [client.post("/v1/eta", json=o) for o in orders[:10]]
            invalid = client.post("/v1/eta", json={"order_id": "o1", "items": -1})
            metrics = client.get("/metrics").text
            document = client.get("/openapi.json").json()
            switched = client.post(
                "/admin/kill-switch",
                json={"on": True},
                headers={"Authorization": f"Bearer {admin_token}"},
            )
        # each on a new connection: they reach both workers, not only the one switched
        after = [_answer(service.url, o)["fallback"] for o in orders[:20]]
        auth = {"Authorization": f"Bearer {admin_token}"}
        httpx2.post(f"{service.url}/admin/kill-switch", json={"on": False}, headers=auth)
        registry.set_alias("production", "2", reason="roll out")
        reloaded = httpx2.post(f"{service.url}/admin/reload", headers=auth, timeout=300.0)
        # the call reached one worker; alias polling is off, yet every worker follows:
        # arrive_model_info is the highest over the live workers, so version 1 reads 0
        # only once none serves it
        wait_for(lambda: _serving(service.url) == {"2"}, 300, "every worker serving version 2")
        versions = {_answer(service.url, o)["model_version"] for o in orders[:20]}
        code = service.stop()
    assert len(spread) == 2, spread
    assert sum(spread.values()) == 32, spread
    assert switched.status_code == 200
    assert after == ["kill_switch"] * 20
    assert reloaded.json()["model_version"] == "2"
    assert [c["status"] for c in reloaded.json()["checks"]] == ["ok"]
    assert versions == {"2"}
    assert [a.status_code for a in answers] == [200] * 10, service.log()
    assert {a.json()["fallback"] for a in answers} == {None}
    assert invalid.status_code == 422
    assert invalid.json()["field"] == "items"
    assert "arrive_predictions_total" in metrics
    assert document["openapi"] == "3.1.0"
    assert code == 0, service.log()
    assert "Traceback" not in service.log()
    assert list((tmp_path / "predictions").rglob("*.parquet")), "the log was not flushed at exit"


def _answers_by_worker(
    port: int, metrics: Path, order: dict[str, Any], count: int
) -> dict[str, int]:
    """How many of ``count`` connections, all opened before any is used, each worker
    answered (by worker pid, from the metrics files)."""
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(count)]
    for connection in connections:
        connection.connect()
    before = _predictions_by_worker(metrics)
    body = json.dumps(order)
    for connection in connections:
        connection.request("POST", "/v1/eta", body, {"Content-Type": "application/json"})
        assert connection.getresponse().status == 200
        connection.close()
    after = _predictions_by_worker(metrics)
    answered = {pid: round(n - before.get(pid, 0.0)) for pid, n in after.items()}
    return {pid: n for pid, n in answered.items() if n}


def _listening(port: int) -> int:
    """Listening TCP sockets on ``port`` (from the kernel's table)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    fields = [row.split() for row in rows]
    return sum(1 for f in fields if f[1].endswith(f":{port:04X}") and f[3] == "0A")


def _predictions_by_worker(metrics: Path) -> dict[str, float]:
    found = {}
    for path in metrics.glob("counter_*.db"):
        values = MmapedDict(str(path), read_mode=True)
        found[path.stem.split("_")[-1]] = sum(
            value for key, value, _ in values.read_all_values() if "arrive_predictions_total" in key
        )
        values.close()
    return found


def _answer(url: str, order: dict[str, Any]) -> dict[str, Any]:
    """The answer to ``order`` on a new connection (so the calls spread over the workers)."""
    answer: dict[str, Any] = httpx2.post(f"{url}/v1/eta", json=order, timeout=10.0).json()
    return answer


def _serving(url: str) -> set[str]:
    """The versions some worker serves, from ``arrive_model_info`` in ``/metrics``."""
    text = httpx2.get(f"{url}/metrics", timeout=10.0).text
    found = re.findall(r'^arrive_model_info\{[^}]*version="([^"]+)"[^}]*\} 1\.0$', text, re.M)
    return set(found)


@pytest.mark.slow
def test_a_worker_that_cannot_start_says_why_in_one_line_and_the_command_fails(
    tmp_path: Path,
) -> None:
    # a registry that is a file, which the command's own check would refuse before
    # starting workers: skipped here, as when the file appears between the check and
    # the workers' start, so the workers' startup fails with it
    not_a_directory = tmp_path / "registry"
    not_a_directory.write_text("")
    script = (
        "import sys\n"
        "import arrive.serving.http.server as server\n"
        "from arrive.cli.main import run\n"
        "server.check_startup = lambda settings: None\n"
        "sys.exit(run(sys.argv[1:]))\n"
    )
    port = str(free_port())
    args = ["serve", "--workers", "2", "--port", port, "--registry", str(not_a_directory)]
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode != 0, done.stderr
    assert (
        f"cannot start: setting registry_dir: registry {not_a_directory}: "
        "exists and is not a directory"
    ) in done.stderr
    assert "the ETA service failed to start (exit code 3)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("table", "named"),
    [
        (
            '[providers.travel.osrm]\nkind = "osrm"\nurl = "ftp://osrm"\n',
            "providers.travel.osrm.url",
        ),
        ('[providers.travel.x]\nkind = "tomtom"\n', "providers.travel.x.kind: unknown kind"),
        (
            '[providers.travel.m]\nkind = "http_json"\nurl = "https://v.example/{origin_lat}"\n'
            'duration_path = "d"\nkey_env = "ARRIVE_TEST_UNSET_KEY"\n',
            "environment variable ARRIVE_TEST_UNSET_KEY is not set",
        ),
        ("[providers]\nretries = 3\n", "providers.retries: unknown setting"),
    ],
)
def test_a_misconfigured_provider_stops_the_start_in_one_line(
    table: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(table, encoding="utf-8")
    assert run(["serve", "--config", str(config), "--registry", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
