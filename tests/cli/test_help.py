"""Every command answers --help, and a wrong command is a one-line mistake."""

from __future__ import annotations

import pytest

from arrive.cli.main import _LazyGroup, cli, run


def _commands() -> list[list[str]]:
    out = [[]]
    for name in _LazyGroup.COMMANDS:
        out.append([name])
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        out.extend([name, sub] for sub in getattr(command, "commands", {}))
    return out


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "arrive")
def test_help(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*path, "--help"]) == 0
    assert "Usage:" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["teleport"]) == 2
    assert "No such command" in capsys.readouterr().err
