"""One runbook per alert, no orphan, each alert linking its own; every runbook says what
the alert means, how to confirm it, how to mitigate and how to verify recovery, with
commands and metric names that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from arrive.cli.main import cli
from arrive.monitoring.rules import alert_rules
from arrive.monitoring.slo import load_slo

from .contract import EXPOSED

RUNBOOKS = Path(__file__).parents[2] / "docs" / "runbooks"
SECTIONS = ("## What it means", "## Confirm", "## Mitigate", "## Verify recovery")
ALERTS = [rule for group in alert_rules(load_slo())["groups"] for rule in group["rules"]]
_METRIC = re.compile(r"\barrive_[a-z0-9_]+\b")
_RECORDED = re.compile(r"\barrive_slo:[a-z0-9_:]+")


def test_one_runbook_per_alert_and_no_orphan() -> None:
    names = {rule["alert"] for rule in ALERTS}
    files = {path.stem for path in RUNBOOKS.glob("*")}
    assert names - files == set(), "alerts without a runbook"
    assert files - names == set(), "runbooks of no alert"


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_each_alert_links_its_runbook(rule: dict[str, str | dict[str, str]]) -> None:
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    assert annotations["runbook_url"] == f"docs/runbooks/{rule['alert']}.md"


@pytest.mark.parametrize("path", sorted(RUNBOOKS.glob("*.md")), ids=lambda path: path.stem)
def test_each_runbook_has_the_four_sections_in_order(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"# {path.stem}\n")
    positions = [text.find(section) for section in SECTIONS]
    assert -1 not in positions, f"missing one of {SECTIONS}"
    assert positions == sorted(positions)


@pytest.mark.parametrize("path", sorted(RUNBOOKS.glob("*.md")), ids=lambda path: path.stem)
def test_the_metrics_a_runbook_names_exist(path: Path) -> None:
    text = _RECORDED.sub("", path.read_text(encoding="utf-8"))
    assert set(_METRIC.findall(text)) - EXPOSED == set()


def _commands(text: str) -> list[list[str]]:
    """Every ``arrive ...`` command line of the runbook's code blocks and inline code."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL) + re.findall(r"`([^`\n]+)`", text):
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.split("  #")[0].strip()
            if line.startswith("arrive "):
                found.append(shlex.split(line)[1:])
    return found


def _problem(argv: list[str]) -> str | None:
    """What is wrong with ``arrive ARGV``: an unknown command or option (None: nothing)."""
    command: click.Command = cli
    words = list(argv)
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.get_command(click.Context(cli), words.pop(0))
        if sub is None:
            return f"no command `arrive {' '.join(argv)}`"
        command = sub
    known = {opt for param in command.params for opt in param.opts}
    unknown = {w.split("=")[0] for w in words if w.startswith("--")} - known
    return f"`arrive {' '.join(argv)}`: unknown {sorted(unknown)}" if unknown else None


@pytest.mark.parametrize("path", sorted(RUNBOOKS.glob("*.md")), ids=lambda path: path.stem)
def test_the_arrive_commands_a_runbook_gives_exist_with_their_options(path: Path) -> None:
    commands = _commands(path.read_text(encoding="utf-8"))
    assert [problem for argv in commands if (problem := _problem(argv))] == []


def test_the_command_check_finds_commands_and_refuses_wrong_ones() -> None:
    text = "```sh\narrive models rollback --alias production  # back\n```\nthen `arrive models lst`"
    commands = _commands(text)
    assert commands == [["models", "rollback", "--alias", "production"], ["models", "lst"]]
    assert _problem(commands[0]) is None
    assert _problem(commands[1]) == "no command `arrive models lst`"
    assert _problem(["models", "rollback", "--version", "3"]) is not None
