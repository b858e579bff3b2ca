"""Every code example of README.md and docs/ runs, so the documentation stays true.

The convention: a fenced ``python``, ``bash`` or ``sh`` block at the start of a line
runs, unless the line just before it is ``<!-- notest: why -->`` (the reason is
required: a block that needs a live Redis, a production host or minutes of work
says so, and names the test that covers it when one does). Python blocks run in a
fresh namespace, shell blocks in ``bash -euo pipefail`` with ``arrive`` meaning this
checkout's CLI; both in a temporary working directory. docs/runbooks/ is left out:
its blocks address production hosts, and tests/monitoring/test_runbooks.py checks
every ``arrive`` command they contain.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")],
)
SKIPPED_DIRS = ("runbooks",)
_FENCE = re.compile(r"^```(python|bash|sh)[ \t]*$")
_NOTEST = re.compile(r"^<!-- notest: (?P<why>\S.*\S) -->$")
_SHELL_PRELUDE = 'arrive() { "$ARRIVE_PYTHON" -m arrive.cli "$@"; }\n'


class Example(NamedTuple):
    page: Path
    line: int
    language: str
    code: str
    skipped_because: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples(page: Path) -> list[Example]:
    """The fenced python/bash/sh blocks of ``page`` with their ``notest`` reason, if any."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for index, line in enumerate(lines):
        fence = _FENCE.match(line)
        if fence is None:
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        marker = _NOTEST.match(lines[index - 1]) if index else None
        code = "\n".join(lines[index + 1 : end]) + "\n"
        why = marker["why"] if marker else None
        found.append(Example(page, index + 1, fence[1], code, why))
    return found


def _documented() -> list[Example]:
    pages = [p for p in PAGES if not set(p.relative_to(ROOT).parts) & set(SKIPPED_DIRS)]
    return [example for page in pages for example in examples(page)]


RUNNABLE = [e for e in _documented() if e.skipped_because is None]


@pytest.mark.parametrize("example", RUNNABLE, ids=lambda e: e.id)
def test_example_runs(example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if example.language == "python":
        exec(compile(example.code, example.id, "exec"), {"__name__": "doc_example"})
        return
    env = {
        **os.environ,
        "ARRIVE_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _SHELL_PRELUDE + example.code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{example.id} failed:\n{done.stdout}\n{done.stderr}"


def test_the_convention_finds_blocks_and_their_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n<!-- notest: needs Redis -->\n```bash\nredis-cli ping\n```\n"
        "  ```python\nindented, in a list: not an example\n  ```\n```text\nnot code\n```\n",
        encoding="utf-8",
    )
    found = examples(page)
    assert [(e.line, e.language, e.code, e.skipped_because) for e in found] == [
        (1, "python", "x = 1\n", None),
        (6, "bash", "redis-cli ping\n", "needs Redis"),
    ]


def test_every_page_with_examples_runs_some_and_skips_only_with_a_reason() -> None:
    documented = _documented()
    assert {e.language for e in RUNNABLE} >= {"python", "bash"}
    bare = [e.id for e in documented if e.skipped_because is not None and not e.skipped_because]
    assert bare == []
    # a marker that is not exactly the convention (typo, no reason) would run the block
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for line in text.splitlines():
            if "notest" in line and line.startswith("<!--"):
                assert _NOTEST.match(line), f"{page.name}: malformed marker {line!r}"
