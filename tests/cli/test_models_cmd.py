"""`arrive models` end to end on a registry in a temporary directory."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from arrive.cli.main import run
from arrive.clock import ManualClock
from arrive.registry import LocalRegistry
from arrive.testing.artifacts import (
    garbled,
    out_of_range_split,
    resign,
    small_bundle,
    truncated,
)
from arrive.testing.registry_contract import START, model_files

GOOD = {"mae_s": 600.0, "coverage_p90": 0.9, "late_rate": 0.1}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLUMNS", "200")
    root = tmp_path / "registry"
    registry = LocalRegistry(root, clock=ManualClock(START))
    registry.register(model_files("1"), {"metrics": GOOD, "code_version": "abc"})
    registry.register(model_files("2"), {"metrics": {**GOOD, "mae_s": 550.0}})
    registry.register(model_files("3"), {"metrics": {**GOOD, "mae_s": 700.0}})
    return root


def _models(root: Path, *args: str) -> int:
    return run(["models", *args, "--registry", str(root)])


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_list_shows_versions_aliases_and_metrics(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _models(root, "promote", "1") == 0
    capsys.readouterr()
    assert _models(root, "list") == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "2024-03-01" in line]
    assert len(rows) == 3
    assert "production" in rows[0]
    assert "600" in rows[0]
    assert "550" in rows[1]


def test_list_of_an_empty_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _models(tmp_path / "none", "list") == 0
    assert "no models registered" in capsys.readouterr().out


def test_show_prints_files_metadata_and_history(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _models(root, "promote", "1", "--reason", "first rollout")
    capsys.readouterr()
    assert _models(root, "show", "production") == 0
    out = capsys.readouterr().out
    assert "version 1 (production)" in out
    assert LocalRegistry(root).get("1").files["p50.txt"].sha256 in out
    assert '"code_version": "abc"' in out
    assert "first rollout" in out


def test_show_json_is_one_document(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _models(root, "promote", "1")
    _models(root, "promote", "2")
    capsys.readouterr()
    assert _models(root, "show", "1", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["version"] == "1"
    assert document["metadata"]["metrics"] == GOOD
    assert [(c["previous"], c["version"]) for c in document["alias_history"]] == [
        (None, "1"),
        ("1", "2"),
    ]


def test_promote_and_rollback(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _models(root, "promote", "1") == 0
    assert _models(root, "promote", "2", "--reason", "lower mae") == 0
    assert "production -> version 2 (was 1)" in capsys.readouterr().out
    assert _models(root, "rollback") == 0
    assert "production rolled back: 2 -> version 1" in capsys.readouterr().out
    registry = LocalRegistry(root)
    assert registry.get("production").version == "1"
    assert [c.reason for c in registry.alias_history("production")] == [
        "promoted to production",
        "lower mae",
        "rollback",
    ]


def test_refused_promotion_is_one_line_and_exit_2(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _models(root, "promote", "1")
    capsys.readouterr()
    assert _models(root, "promote", "3") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "version 3 cannot become production: mae_s 700.0 is 16.7% worse" in line
    assert LocalRegistry(root).get("production").version == "1"


def test_forced_promotion_warns(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _models(root, "promote", "1")
    assert _models(root, "promote", "3", "--force") == 0
    assert "warning: forced past the gate: mae_s" in capsys.readouterr().err
    assert LocalRegistry(root).get("production").version == "3"


def test_other_aliases(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _models(root, "promote", "3", "--alias", "shadow") == 0
    assert _models(root, "promote", "2", "--alias", "canary") == 0
    assert LocalRegistry(root).get("shadow").version == "3"
    assert _models(root, "rollback", "--alias", "shadow") == 2
    assert "no earlier version" in _one_error_line(capsys.readouterr().err)


def test_gc(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _models(root, "promote", "1")
    assert _models(root, "gc", "--keep", "1", "--dry-run") == 0
    assert "would delete 2" in capsys.readouterr().out
    assert len(LocalRegistry(root).versions()) == 3
    assert _models(root, "gc", "--keep", "1") == 0
    assert "deleted 2" in capsys.readouterr().out
    assert [v.version for v in LocalRegistry(root).versions()] == ["1", "3"]
    assert _models(root, "gc", "--keep", "-1") == 2


def test_corrupted_artifact_is_refused(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (root / "versions" / "2" / "p50.txt").write_bytes(b"edited by hand")
    assert _models(root, "promote", "2") == 2
    assert "do not match the checksum" in _one_error_line(capsys.readouterr().err)
    assert _models(root, "verify") == 2
    captured = capsys.readouterr()
    assert "version 1: 3 files ok" in captured.out
    assert "1 of 3 failed" in _one_error_line(captured.err)
    assert _models(root, "verify", "1", "3") == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "9"], "no version 9"),
        (["show", "production"], "alias 'production' points at no version"),
        (["promote", "latest"], "neither a version number nor an alias"),
        (["rollback"], "no earlier version"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    root: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert _models(root, *args) == 2
    assert message in _one_error_line(capsys.readouterr().err)


def test_unknown_alias_option_is_a_usage_error(root: Path) -> None:
    assert _models(root, "promote", "1", "--alias", "prod") == 2


def test_registry_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    assert _models(tmp_path / "file", "list") == 2
    assert "not a directory" in _one_error_line(capsys.readouterr().err)


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["models", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("list", "show", "promote", "rollback", "gc", "verify"):
        assert name in out


@pytest.fixture(scope="module")
def bundle_files() -> dict[str, bytes]:
    return small_bundle().to_files()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (out_of_range_split, "the model crashed the check process (SIGSEGV)"),
        (lambda data: garbled(data, 0.2), "the model crashed the check process (SIGABRT)"),
        (lambda data: truncated(data, 0.98), "booster_q90.txt: incomplete"),
    ],
)
def test_verify_runs_the_model_so_a_resigned_broken_booster_fails(
    tmp_path: Path,
    bundle_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[bytes], bytes],
    reason: str,
) -> None:
    root = tmp_path / "registry"
    registry = LocalRegistry(root)
    for _ in range(2):
        registry.register(bundle_files, {"metrics": GOOD})
    resign(root, "2", "booster_q90.txt", damage(bundle_files["booster_q90.txt"]))
    registry.open("2")  # the checksums pass: only running the model shows the damage
    assert _models(root, "verify") == 2
    captured = capsys.readouterr()
    assert "version 1: 6 files ok, model ok: 32 probe rows match" in captured.out
    line = _one_error_line(captured.err)
    assert line.startswith(f"error: 1 of 2 failed: version 2: {reason}")
    assert _models(root, "verify", "1") == 0


def test_verify_says_when_a_version_has_no_reference_predictions(
    tmp_path: Path, bundle_files: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    registry = LocalRegistry(tmp_path / "registry")
    registry.register({n: d for n, d in bundle_files.items() if n != "probe.json"}, {})
    assert _models(registry.root, "verify") == 0
    out = capsys.readouterr().out
    assert "version 1: 5 files ok, model unverified: registered without reference" in out
