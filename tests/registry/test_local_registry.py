"""LocalRegistry specifics: layout on disk, persistence, crash leftovers, many processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arrive.clock import ManualClock
from arrive.errors import ConfigError, ModelIntegrityError
from arrive.registry import LocalRegistry
from arrive.testing.registry_contract import START, model_files, model_metadata


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "registry"


@pytest.fixture
def registry(root: Path) -> LocalRegistry:
    return LocalRegistry(root, clock=ManualClock(START))


def test_state_survives_a_new_instance(registry: LocalRegistry, root: Path) -> None:
    for tag in "ab":
        registry.register(model_files(tag), model_metadata())
    registry.set_alias("production", "1", reason="first")
    registry.set_alias("production", "2", reason="second")

    reopened = LocalRegistry(root)
    assert [v.version for v in reopened.versions()] == ["1", "2"]
    assert reopened.get("production").version == "2"
    assert [c.reason for c in reopened.alias_history("production")] == ["first", "second"]
    assert reopened.open("production").files == model_files("b")
    assert reopened.rollback("production").version == "1"
    assert reopened.register(model_files("c"), {}).version == "3"


def test_layout_is_an_index_and_one_folder_per_version(registry: LocalRegistry, root: Path) -> None:
    registry.register(model_files(), model_metadata())
    index = json.loads((root / "index.json").read_bytes())
    assert index["versions"]["1"]["files"]["p50.txt"]["size_bytes"] == 31
    assert (root / "versions" / "1" / "p50.txt").read_bytes() == model_files()["p50.txt"]
    leftovers = [p.name for p in root.rglob(".*") if p.name != ".lock"]
    assert leftovers == []


def test_default_root_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert LocalRegistry().root == tmp_path / ".arrive" / "registry"


def test_reading_creates_nothing(root: Path) -> None:
    registry = LocalRegistry(root)
    assert registry.versions() == []
    assert not root.exists()


def test_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        LocalRegistry(tmp_path / "file")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "not a registry index"), (b'{"format": 99}', "format 99")],
)
def test_unreadable_index_is_an_integrity_error(
    registry: LocalRegistry, root: Path, content: bytes, message: str
) -> None:
    registry.register(model_files(), model_metadata())
    (root / "index.json").write_bytes(content)
    with pytest.raises(ModelIntegrityError, match=message):
        registry.versions()
    with pytest.raises(ModelIntegrityError, match=r"index\.json"):
        registry.register(model_files(), model_metadata())


def test_a_failed_change_leaves_the_index_as_it_was(registry: LocalRegistry, root: Path) -> None:
    registry.register(model_files(), model_metadata())
    before = (root / "index.json").read_bytes()
    with pytest.raises(ConfigError):
        registry.set_alias("staging", "1", reason="unknown alias")
    with pytest.raises(ConfigError):
        registry.register({"p50.txt": b"x"}, {"bad": float("nan")})
    assert (root / "index.json").read_bytes() == before


def test_leftovers_of_interrupted_writes_are_replaced_and_swept(
    registry: LocalRegistry, root: Path
) -> None:
    registry.register(model_files("a"), model_metadata())
    # A crash after moving files into place but before writing the index leaves these:
    (root / "versions" / "2").mkdir()
    (root / "versions" / "2" / "p50.txt").write_bytes(b"stale")
    (root / "versions" / ".7.partial-dead").mkdir()
    assert registry.register(model_files("b"), model_metadata()).version == "2"
    assert registry.open("2").files == model_files("b")
    (root / "versions" / "9").mkdir()
    assert registry.gc(5) == []
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["1", "2"]


def test_delete_removes_the_files(registry: LocalRegistry, root: Path) -> None:
    registry.register(model_files(), model_metadata())
    registry.delete("1")
    assert not (root / "versions" / "1").exists()


_WRITER = """
import sys
from arrive.registry import LocalRegistry
registry = LocalRegistry(sys.argv[1])
for i in range(int(sys.argv[3])):
    registry.register({"model.txt": f"{sys.argv[2]}-{i}".encode()}, {"writer": sys.argv[2]})
    registry.versions()
"""


def test_processes_writing_at_once_lose_nothing(registry: LocalRegistry, root: Path) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(root), f"w{n}", "10"])
        for n in range(4)
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0, 0, 0]
    versions = registry.versions()
    assert [v.version for v in versions] == [str(n) for n in range(1, 41)]
    contents = {registry.read_file(v.version, "model.txt") for v in versions}
    assert contents == {f"w{n}-{i}".encode() for n in range(4) for i in range(10)}
