"""docs/client.md's Python examples run (against the scripted local server)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.client.conftest import Scripted

PAGE = Path(__file__).resolve().parents[2] / "docs" / "client.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


@pytest.mark.parametrize("code", BLOCKS, ids=lambda c: c.splitlines()[0][:40])
def test_the_example_runs(code: str, scripted: Scripted, tmp_path: Path) -> None:
    scripted.max_batch = 100
    namespace = {"__name__": "client_docs", "URL": scripted.url, "TMP": str(tmp_path)}
    exec(compile(code, str(PAGE), "exec"), namespace)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 5
