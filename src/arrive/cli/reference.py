"""The CLI reference page (docs/reference/cli.md), generated from the click commands.

``python -m arrive.cli.reference`` rewrites the page (``./dev docs`` does it first);
tests/test_docs_site.py fails when the committed page differs from the commands'
``--help``, so the reference cannot drift from the code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

HEADER = """# CLI reference

Generated from the commands' `--help` by `python -m arrive.cli.reference`
(`./dev docs` regenerates it; a test fails when it is stale). Every command exits 2
with one line naming the option on a user's mistake.
"""


def cli_reference() -> str:
    """The page: one section per command and subcommand, its ``--help`` in a text block."""
    from arrive.cli.main import cli

    sections = [HEADER]
    for path, help_text in _helps(cli, ["arrive"], None):
        sections.append(f"## `{' '.join(path)}`\n\n```text\n{help_text.rstrip()}\n```\n")
    return "\n".join(sections)


def _helps(
    command: click.Command, path: list[str], parent: click.Context | None
) -> Iterator[tuple[list[str], str]]:
    ctx = click.Context(
        command,
        info_name=path[-1],
        parent=parent,
        terminal_width=100,
        help_option_names=["-h", "--help"],
    )
    yield path, command.get_help(ctx)
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _helps(sub, [*path, name], ctx)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/reference/cli.md")
    out.write_text(cli_reference(), encoding="utf-8")
