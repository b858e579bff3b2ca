"""The README's promise: a Quick start of exactly two commands (CI runs them).

Its code examples, like every page's under docs/, run in tests/test_doc_examples.py.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_has_exactly_two_commands() -> None:
    section = README.read_text(encoding="utf-8").split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["./dev demo", "./dev test"]


def test_the_readme_stays_short_and_links_the_documentation() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text) < 6000, "move long sections to a page under docs/"
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (README.parent / link).exists(), link
