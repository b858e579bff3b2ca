"""The container image and the manifests, checked with the real tools (no Docker daemon
here): hadolint lints the Dockerfile, kubernetes-validate checks every manifest against
the Kubernetes schemas, promtool checks compose's Prometheus configuration; and every
``arrive`` command line and ``ARRIVE_*`` setting the files hold is one the code accepts,
so a renamed option or setting breaks this test, not a deployment."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from arrive.cli.main import cli
from arrive.errors import ConfigError
from arrive.serving.settings import FIELDS, load_settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed (the dev extra installs it)"
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


# --- Dockerfile ------------------------------------------------------------------------


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    done = _run(_tool("hadolint"), "--failure-threshold", "style", str(DOCKERFILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_fails_a_dockerfile_with_the_usual_mistakes(tmp_path: Path) -> None:
    sloppy = tmp_path / "Dockerfile"
    sloppy.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    done = _run(_tool("hadolint"), "--failure-threshold", "style", str(sloppy))
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # the latest tag
    assert "DL3008" in done.stdout  # unpinned apt packages


def test_the_image_runs_as_a_non_root_user_with_a_health_check() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    assert any(re.match(r"USER [1-9]\d*", line) for line in final)
    assert any(line.startswith("HEALTHCHECK ") for line in final)
    assert "/healthz" in DOCKERFILE.read_text()


# --- Kubernetes --------------------------------------------------------------------------


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    assert len(MANIFESTS) >= 6
    done = _run(_tool("kubernetes-validate"), "--strict", *map(str, MANIFESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_kubernetes_validate_fails_a_misspelt_field(tmp_path: Path) -> None:
    broken = tmp_path / "serve.yaml"
    broken.write_text(
        (REPO / "deploy" / "kubernetes" / "serve.yaml")
        .read_text()
        .replace("readinessProbe", "readynessProbe")
    )
    done = _run(_tool("kubernetes-validate"), "--strict", str(broken))
    assert done.returncode != 0
    assert "readynessProbe" in done.stdout + done.stderr


def _documents() -> Iterator[dict[str, Any]]:
    for path in MANIFESTS:
        yield from (d for d in yaml.safe_load_all(path.read_text()) if d)


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _documents() if d["kind"] == kind]


def _pod_specs() -> Iterator[dict[str, Any]]:
    for doc in _documents():
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            yield spec["jobTemplate"]["spec"]["template"]["spec"]
        elif "template" in spec:
            yield spec["template"]["spec"]


def test_the_service_is_probed_scaled_and_kept_available() -> None:
    (serve,) = [d for d in _kind("Deployment") if d["metadata"]["name"] == "arrive-serve"]
    container = serve["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"]
    (hpa,) = _kind("HorizontalPodAutoscaler")
    kinds = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    assert kinds["Pods"]["pods"]["metric"]["name"] == "arrive_in_flight"  # a metric we export
    (pdb,) = _kind("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] < serve["spec"]["replicas"]
    assert {"ConfigMap", "Secret", "CronJob", "StatefulSet"} <= {d["kind"] for d in _documents()}


def test_every_pod_runs_as_non_root() -> None:
    specs = list(_pod_specs())
    assert len(specs) >= 4
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_exported_in_flight_metric_exists() -> None:
    from arrive.monitoring import metrics

    assert metrics.IN_FLIGHT._name == "arrive_in_flight"


# --- arrive command lines and settings ---------------------------------------------------


def _command_lines() -> Iterator[tuple[str, list[str]]]:
    for spec in _pod_specs():
        for container in spec["containers"]:
            yield container["name"], [str(a) for a in container["args"]]
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose["services"].items():
        command = service.get("command")
        if service.get("image") == "arrive:local" and isinstance(command, list):
            if service.get("entrypoint"):  # a shell line: its arrive commands
                for line in re.findall(r"arrive ([^&|()]+)", command[0]):
                    yield name, line.split()
            else:
                yield name, [str(a) for a in command]
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE.read_text(), re.M)
    assert cmd is not None
    yield "Dockerfile", yaml.safe_load(cmd[1])


def _options(command: click.Command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


def test_every_arrive_command_line_names_real_commands_and_options() -> None:
    lines = list(_command_lines())
    assert {name for name, _ in lines} >= {"serve", "ingest", "monitor", "retrain", "setup"}
    context = click.Context(cli)
    for name, args in lines:
        command = cli.get_command(context, args[0])
        assert command is not None, f"{name}: no command {args[0]!r}"
        unknown = [a for a in args[1:] if a.startswith("--") and a not in _options(command)]
        assert not unknown, f"{name}: {args[0]} has no option {unknown}"


def _env_blocks() -> Iterator[tuple[str, dict[str, str]]]:
    (config,) = _kind("ConfigMap")
    (secret,) = _kind("Secret")
    yield "ConfigMap + Secret", {**config["data"], **secret["stringData"]}
    compose = yaml.safe_load(COMPOSE.read_text())
    yield "compose.yaml", compose["x-arrive"]["environment"]
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    yield "Dockerfile", dict(re.findall(r"(ARRIVE_[A-Z_]+)=(\S+)", text))


@pytest.mark.parametrize(("where", "env"), list(_env_blocks()), ids=lambda v: str(v)[:20])
def test_every_setting_given_to_the_service_is_one_it_accepts(
    where: str, env: dict[str, str]
) -> None:
    # the service ignores ARRIVE_* variables that name no setting (other components
    # read theirs), so a misspelt one would be silently lost: check the names here
    assert env, where
    unknown = sorted(k for k in env if k.removeprefix("ARRIVE_").lower() not in FIELDS)
    assert not unknown, f"{where}: no such setting {unknown}"
    load_settings(environ={k: str(v) for k, v in env.items()})  # ConfigError names the value


def test_a_bad_value_in_the_settings_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="ARRIVE_WORKERS"):
        load_settings(environ={"ARRIVE_WORKERS": "two"})


# --- compose -----------------------------------------------------------------------------


def test_compose_mounts_files_that_exist_and_its_prometheus_config_is_valid(tmp_path: Path) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    mounted = [
        v.split(":")[0]
        for service in compose["services"].values()
        for v in service.get("volumes", [])
        if isinstance(v, str) and v.startswith("./")
    ]
    assert mounted
    for source in mounted:
        assert (REPO / source).exists(), source
    # promtool checks the configuration and loads the rule files it names
    config = (REPO / "deploy" / "compose" / "prometheus.yml").read_text()
    rules = REPO / "deploy" / "prometheus"
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace("/etc/prometheus/rules", str(rules)))
    done = _run(_tool("promtool"), "check", "config", str(local))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") >= 3  # the config and both rule files
