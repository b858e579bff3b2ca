"""docs/rollout.md: its plan, its commands and their outputs, its audit line and its
Python example, run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import msgspec
import pytest

from arrive.cli.main import run
from arrive.registry import LocalRegistry
from arrive.rollout.plan import plan_from_toml
from arrive.rollout.state import AuditEntry
from arrive.testing.registry_contract import model_files, model_metadata

DOC = Path(__file__).resolve().parents[2] / "docs" / "rollout.md"
TABLE = re.compile(r"[┏┃┡│└━─]")


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def _examples() -> list[tuple[list[str], list[str]]]:
    """Each ``$ arrive ...`` command of the console block with the lines shown after it."""
    [console] = _blocks("console")
    examples: list[tuple[list[str], list[str]]] = []
    for line in console.splitlines():
        if line.startswith("$ arrive "):
            examples.append((shlex.split(line.removeprefix("$ arrive ")), []))
        elif line.strip():
            examples[-1][1].append(line.strip())
    return examples


def test_the_commands_print_what_the_page_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "120")
    registry = LocalRegistry(".arrive/registry")
    for tag in "abc":
        registry.register(model_files(tag), model_metadata())
    registry.set_alias("production", "1", reason="first model")
    [plan] = _blocks("toml")
    Path("plan.toml").write_text(plan)
    examples = _examples()
    assert len(examples) >= 8
    for argv, shown in examples:
        expected = 2 if shown and shown[0].startswith("error:") else 0
        assert run(argv) == expected, argv
        captured = capsys.readouterr()
        printed = [line.strip() for line in (captured.out + captured.err).splitlines()]
        for line in shown:
            assert line in printed, (argv, line, printed)


def test_the_plan_is_valid_and_not_the_default(tmp_path: Path) -> None:
    [plan] = _blocks("toml")
    path = tmp_path / "plan.toml"
    path.write_text(plan)
    assert plan_from_toml(path).min_orders == 400


def test_the_audit_line_is_one_the_store_writes() -> None:
    [line] = _blocks("json")
    entry = msgspec.json.decode(line.strip(), type=AuditEntry)
    assert msgspec.json.encode(entry).decode() == line.strip()


def test_the_python_example_runs() -> None:
    [code] = _blocks("python")
    exec(compile(code, str(DOC), "exec"), {"__name__": "rollout_docs"})
