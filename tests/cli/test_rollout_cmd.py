"""`arrive rollout` end to end on a registry in a temporary directory."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from arrive.cli.main import run
from arrive.clock import ManualClock
from arrive.errors import RolloutConflict
from arrive.registry import LocalRegistry
from arrive.rollout import transitions
from arrive.rollout.control import Rollouts
from arrive.testing.artifacts import resign, small_bundle, truncated
from arrive.testing.registry_contract import START, model_files, model_metadata
from arrive.testing.rollout_contract import no_check


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLUMNS", "200")
    root = tmp_path / "registry"
    registry = LocalRegistry(root, clock=ManualClock(START))
    for tag in "abc":
        registry.register(model_files(tag), model_metadata())
    registry.set_alias("production", "1", reason="first model")
    return root


def _rollout(root: Path, *args: str) -> int:
    return run(["rollout", *args, "--registry", str(root)])


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_start_status_pause_resume_promote(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _rollout(root, "start", "2", "--steps", "10,100", "--min-orders", "50") == 0
    assert "rollout 2-1: version 2 against production 1, now shadow" in capsys.readouterr().out
    assert _rollout(root, "pause", "--actor", "ana", "--reason", "checking a dashboard") == 0
    assert _rollout(root, "status") == 0
    out = capsys.readouterr().out
    assert "paused (shadow)" in out
    assert "checking a dashboard" in out
    assert "steps 10/100 %, each >= 50 orders" in out
    assert _rollout(root, "resume") == 0
    assert _rollout(root, "promote", "--reason", "looks fine") == 0
    assert "production is now version 2" in capsys.readouterr().out
    assert LocalRegistry(root).get("production").version == "2"
    assert run(["models", "rollback", "--registry", str(root)]) == 0
    assert LocalRegistry(root).get("production").version == "1"


def test_status_json_is_one_document(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _rollout(root, "status", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "rollout": None,
        "share": None,
        "state": None,
        "audit": [],
    }
    _rollout(root, "start", "3", "--shadow-minutes", "0", "--unit", "store", "--actor", "bo")
    _rollout(root, "abort", "--actor", "bo")
    capsys.readouterr()
    assert _rollout(root, "status", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["rollout"]["plan"]["unit"] == "store"
    assert (document["state"], document["share"]) == ("aborted", 0.0)
    assert [(e["source"], e["target"], e["actor"]) for e in document["audit"]] == [
        ("-", "canary 5 %", "bo"),
        ("canary 5 %", "aborted", "bo"),
    ]


def test_a_plan_file(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("[rollout]\nshadow_minutes = 0\nsteps = [50, 100]\n")
    assert _rollout(root, "start", "2", "--plan", str(plan)) == 0
    assert "now canary 50 %" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "9"], "no version 9 in this registry"),
        (["start", "1"], "version 1 is already production"),
        (["start", "production"], "version 1 is already production"),
        (["start", "2", "--steps", "5,50"], "plan: steps must end at 100"),
        (["start", "2", "--min-orders", "0"], "plan: min_orders must be a whole number >= 1"),
        (["start", "2", "--plan", "missing.toml"], "plan file missing.toml does not exist"),
        (["pause"], "no rollout in this registry"),
        (["abort"], "no rollout in this registry"),
    ],
)
def test_refusals_are_one_line_and_exit_2(
    root: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert _rollout(root, *args) == 2
    assert message in _one_error_line(capsys.readouterr().err)


def test_plan_file_and_options_together_is_a_usage_error(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("steps = [100]\n")
    assert _rollout(root, "start", "2", "--plan", str(plan), "--steps", "100") == 2
    assert "not both" in capsys.readouterr().err


def test_a_second_rollout_while_one_is_active(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _rollout(root, "start", "2") == 0
    assert _rollout(root, "start", "3") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "rollout 2-1 (version 2) is shadow: abort it or let it finish first" in line
    assert _rollout(root, "pause") == 0
    assert _rollout(root, "pause") == 2
    assert "rollout 2-1 is already paused" in _one_error_line(capsys.readouterr().err)


def test_no_production_to_roll_out_against(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = LocalRegistry(tmp_path / "fresh")
    registry.register(model_files(), model_metadata())
    assert _rollout(registry.root, "start", "1") == 2
    assert "no production version to roll out against" in _one_error_line(capsys.readouterr().err)


def test_a_version_that_fails_its_checksum(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (root / "versions" / "2" / "p50.txt").write_bytes(b"edited by hand")
    assert _rollout(root, "start", "2") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "version 2 fails its check: version 2, file 'p50.txt': contents do not match" in line
    assert LocalRegistry(root).get("production").version == "1"


@pytest.fixture(scope="module")
def bundle_files() -> dict[str, bytes]:
    return small_bundle().to_files()


def test_a_version_that_fails_its_model_check(
    tmp_path: Path, bundle_files: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """Its checksums pass (re-signed): only running the model shows the damage."""
    root = tmp_path / "registry"
    registry = LocalRegistry(root)
    for _ in range(2):
        registry.register(bundle_files, {})
    registry.set_alias("production", "1", reason="first")
    resign(root, "2", "booster_q90.txt", truncated(bundle_files["booster_q90.txt"], 0.98))
    assert _rollout(root, "start", "2") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "version 2 fails its check: booster_q90.txt: incomplete" in line
    assert _rollout(root, "status", "--json") == 0
    assert json.loads(capsys.readouterr().out)["rollout"] is None


def _race(root: Path, verb: str, barrier: Any) -> None:
    """In a child process: read the rollout, wait for the other racer, then commit."""
    rollouts = Rollouts(LocalRegistry(root), verify=no_check)
    before = rollouts.store.read()
    assert before is not None
    moved = getattr(transitions, verb)(before, actor=verb, reason="race", now=START)
    barrier.wait(timeout=30)
    try:
        rollouts.store.commit(moved, expected=(before.id, before.revision))
    except RolloutConflict:
        os._exit(3)
    os._exit(0)


def test_two_processes_at_once_one_wins_the_other_is_told(root: Path) -> None:
    assert _rollout(root, "start", "2") == 0
    context = multiprocessing.get_context("fork")  # the children share this process's imports
    barrier = context.Barrier(2)
    racers = [context.Process(target=_race, args=(root, v, barrier)) for v in ("pause", "abort")]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    assert sorted(racer.exitcode for racer in racers) == [0, 3]
    winner = "pause" if racers[0].exitcode == 0 else "abort"
    audit = Rollouts(LocalRegistry(root)).audit()
    assert [entry.actor for entry in audit[1:]] == [winner]


def test_models_history_shows_what_was_live_when(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _rollout(root, "start", "2", "--shadow-minutes", "0")
    _rollout(root, "promote", "--reason", "ship it")
    capsys.readouterr()
    assert run(["models", "history", "--registry", str(root)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "production" in line or "rollout 2-1" in line]
    assert len(rows) == 4, out
    assert "first model" in rows[0]
    assert "canary 5 %" in rows[1]
    assert "ship it" in rows[2] or "ship it" in rows[3]
