"""The import graph follows docs/architecture.md: import-linter's contracts hold.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``), so
``lint-imports`` run by hand checks the same thing as this test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import arrive

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
SOURCE = Path(arrive.__file__).resolve().parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> dict[str, dict[str, list[str]]]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def _top_level() -> set[str]:
    """``arrive.X`` for every top-level module and package of the source tree."""
    names = {p.stem for p in SOURCE.glob("*.py")} | {
        p.name for p in SOURCE.iterdir() if (p / "__init__.py").is_file()
    }
    return {f"arrive.{name}" for name in names - {"__init__", "__main__"}}


def _layers_drawn(markdown: Path, after: str) -> list[str]:
    """The layers drawn in the first ``text`` block after the line ``after``."""
    text = markdown.read_text().split(after, 1)[1].split("```text\n", 1)[1]
    block = text.split("```", 1)[0]
    # a layer's line starts in the first columns; a deeper indent continues its note
    rows = [line for line in block.splitlines() if line.strip() and not line.startswith("  ")]
    return [re.split(r"\s{2,}", row.strip())[0] for row in rows]


def _lint(source_parent: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter's contracts over the ``arrive`` package found in ``source_parent``."""
    return subprocess.run(
        [str(LINT_IMPORTS), str(PYPROJECT), "--no-cache", "--no-logo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env={"PYTHONPATH": str(source_parent), "PATH": "/usr/bin:/bin"},
    )


def test_the_import_contracts_hold() -> None:
    done = _lint(SOURCE.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_every_top_level_package_sits_in_exactly_one_layer() -> None:
    # a new package (rollout/, providers/) must be placed in the layers, or its
    # imports go unchecked
    layers = _contracts()["layers"]["layers"]
    placed = [name.strip() for layer in layers for name in layer.split("|")]
    assert sorted(placed) == sorted(_top_level())


def test_only_cli_demo_testing_and_training_may_import_training() -> None:
    # testing: the session model of the test suite is trained (arrive.testing.trained)
    sources = _contracts()["training-is-offline"]["source_modules"]
    allowed = {"arrive.cli", "arrive.demo", "arrive.testing", "arrive.training"}
    assert sorted(sources) == sorted(_top_level() - allowed)


def test_the_client_imports_only_schema_errors_and_clock() -> None:
    # the client ships to callers: the service's internals must not come with it
    forbidden = _contracts()["client-stands-alone"]["forbidden_modules"]
    allowed = {"arrive.client", "arrive.clock", "arrive.errors", "arrive.schema"}
    assert sorted(forbidden) == sorted(_top_level() - allowed)


def test_only_cli_demo_and_testing_may_import_the_client() -> None:
    sources = _contracts()["client-is-for-callers"]["source_modules"]
    allowed = {"arrive.cli", "arrive.client", "arrive.demo", "arrive.testing"}
    assert sorted(sources) == sorted(_top_level() - allowed)


@pytest.mark.parametrize(
    ("markdown", "after"),
    [
        (REPO / "docs" / "architecture.md", "## Layers"),
        (REPO / "docs" / "concepts" / "overview.md", "The packages are"),
    ],
)
def test_the_docs_draw_the_layers_of_the_contract(markdown: Path, after: str) -> None:
    layers = [layer.replace("arrive.", "") for layer in _contracts()["layers"]["layers"]]
    assert _layers_drawn(markdown, after) == layers


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("serving/slot.py", "import arrive.training.split", "Only cli, demo, testing and training"),
        ("serving/slot.py", "import arrive.cli.main", "Serving imports neither"),
        (
            "features/spec.py",
            "import arrive.training.split",
            "Only cli, demo, testing and training",
        ),
        ("store/keys.py", "import arrive.features.spec", "Top-level packages form layers"),
        ("client/calls.py", "import arrive.datadir", "The client imports only"),
        ("serving/answer.py", "import arrive.client", "Only cli, demo and testing import"),
        ("monitoring/metrics.py", "import arrive.serving.slot", "Top-level packages form layers"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    copy = tmp_path / "arrive"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")

    done = _lint(tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    broken = [row for row in done.stdout.splitlines() if row.rstrip().endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), done.stdout
