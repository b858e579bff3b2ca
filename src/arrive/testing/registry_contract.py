"""Conformance suite for :class:`~arrive.registry.base.ModelRegistry` backends.

Every backend must pass it unchanged. Provide a ``registry_backend`` fixture
returning a :class:`RegistryBackend` (fresh storage per test) and subclass
:class:`RegistryContract` in a test module::

    import pytest
    from arrive.testing.registry_contract import InMemoryBackend, LocalBackend, RegistryContract

    @pytest.fixture(params=["memory", "local"])
    def registry_backend(request, tmp_path):
        return InMemoryBackend() if request.param == "memory" else LocalBackend(tmp_path)

    class TestRegistryContract(RegistryContract):
        pass
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from arrive.clock import Clock, ManualClock
from arrive.errors import (
    ConfigError,
    InputFileError,
    ModelIntegrityError,
    ModelNotFound,
    RegistryConflict,
)
from arrive.registry.base import ModelRegistry
from arrive.registry.local import VERSIONS_DIR, LocalRegistry
from arrive.registry.memory import InMemoryRegistry

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


class RegistryBackend(Protocol):
    """One backend under test, over storage of its own.

    To implement, provide ``make`` (called once per test) and ``tamper``, which
    changes stored bytes behind the registry's back, as disk corruption or a hand
    edit would.
    """

    def make(self, clock: Clock) -> ModelRegistry: ...

    def tamper(self, version: str, name: str, data: bytes | None) -> None:
        """Replace the stored bytes of a file (``None`` removes the file)."""
        ...


class InMemoryBackend:
    """:class:`~arrive.registry.memory.InMemoryRegistry` over a dict this object owns."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def make(self, clock: Clock) -> ModelRegistry:
        return InMemoryRegistry(clock=clock, blobs=self.blobs)

    def tamper(self, version: str, name: str, data: bytes | None) -> None:
        key = f"{version}/{name}"
        if data is None:
            del self.blobs[key]
        else:
            self.blobs[key] = data


class LocalBackend:
    """:class:`~arrive.registry.local.LocalRegistry` in the directory ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def make(self, clock: Clock) -> ModelRegistry:
        return LocalRegistry(self.root, clock=clock)

    def tamper(self, version: str, name: str, data: bytes | None) -> None:
        path = self.root / VERSIONS_DIR / version / name
        if data is None:
            path.unlink()
        else:
            path.write_bytes(data)


def model_files(tag: str = "a") -> dict[str, bytes]:
    """A small bundle shaped like a real one: a booster per quantile and a heuristic."""
    return {
        "p50.txt": f"tree\nversion=v4\nquantile=0.5 {tag}\n".encode(),
        "p90.txt": f"tree\nversion=v4\nquantile=0.9 {tag}\n".encode(),
        "heuristic.json": f'{{"global_s": 1800, "tag": "{tag}"}}'.encode(),
    }


def model_metadata(mae_s: float = 600.0, **extra: Any) -> dict[str, Any]:
    """Metadata shaped like the training pipeline's."""
    return {
        "metrics": {"mae_s": mae_s, "coverage_p90": 0.9, "late_rate": 0.1},
        "features": ["distance_km", "hour"],
        "feature_hash": "abc123",
        "data_range": ["2015-01-21", "2015-02-18"],
        **extra,
    }


class RegistryContract:
    """The tests every registry backend passes (needs a ``registry_backend`` fixture)."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(START)

    @pytest.fixture
    def registry(self, registry_backend: RegistryBackend, clock: ManualClock) -> ModelRegistry:
        return registry_backend.make(clock)

    # -- register / get / versions ----------------------------------------------

    def test_versions_are_numbered_from_one(self, registry: ModelRegistry) -> None:
        numbers = [registry.register(model_files(t), model_metadata()).version for t in "abc"]
        assert numbers == ["1", "2", "3"]

    def test_register_records_checksums_time_and_metadata(
        self, registry: ModelRegistry, clock: ManualClock
    ) -> None:
        clock.advance(90)
        files = model_files()
        record = registry.register(files, model_metadata(612.5))
        assert record.created_at == START + timedelta(seconds=90)
        assert record.metadata == model_metadata(612.5)
        assert record.metrics["mae_s"] == 612.5
        assert sorted(record.files) == sorted(files)
        for name, data in files.items():
            assert record.files[name].sha256 == hashlib.sha256(data).hexdigest()
            assert record.files[name].size_bytes == len(data)
        assert registry.get("1") == record

    def test_register_reads_files_given_as_paths(
        self, registry: ModelRegistry, tmp_path: Path
    ) -> None:
        (tmp_path / "model.txt").write_bytes(b"booster bytes")
        registry.register({"p50.txt": tmp_path / "model.txt"}, {})
        assert registry.read_file("1", "p50.txt") == b"booster bytes"

    @pytest.mark.parametrize("name", ["", "../p50.txt", "sub/p50.txt", ".hidden", "-x", "a b"])
    def test_register_refuses_names_that_are_not_plain_files(
        self, registry: ModelRegistry, name: str
    ) -> None:
        with pytest.raises(ConfigError, match="not a plain file name"):
            registry.register({name: b"x"}, {})
        assert registry.versions() == []

    def test_register_refuses_missing_input_file(
        self, registry: ModelRegistry, tmp_path: Path
    ) -> None:
        with pytest.raises(InputFileError, match=r"p50\.txt.*cannot read"):
            registry.register({"p50.txt": tmp_path / "absent.txt"}, {})

    def test_register_refuses_an_empty_bundle(self, registry: ModelRegistry) -> None:
        with pytest.raises(ConfigError, match="at least one file"):
            registry.register({}, {})

    @pytest.mark.parametrize(
        "metadata",
        [{"mae_s": float("nan")}, {"mae_s": float("inf")}, {"when": datetime(2024, 1, 1)}],
    )
    def test_register_refuses_metadata_json_cannot_hold(
        self, registry: ModelRegistry, metadata: dict[str, Any]
    ) -> None:
        with pytest.raises(ConfigError, match="metadata"):
            registry.register(model_files(), metadata)
        assert registry.versions() == []

    def test_records_are_copies(self, registry: ModelRegistry) -> None:
        given = model_metadata()
        record = registry.register(model_files(), given)
        given["metrics"]["mae_s"] = 1.0
        record.metadata["metrics"]["mae_s"] = 2.0
        assert registry.get("1").metrics["mae_s"] == 600.0

    def test_metadata_reads_back_as_json(self, registry: ModelRegistry) -> None:
        registry.register(model_files(), {"features": ("a", "b"), "n": 3, "ok": True})
        assert registry.get("1").metadata == {"features": ["a", "b"], "n": 3, "ok": True}

    def test_versions_lists_oldest_first_with_aliases(self, registry: ModelRegistry) -> None:
        for tag in "abc":
            registry.register(model_files(tag), model_metadata())
        registry.set_alias("production", "2", reason="first")
        registry.set_alias("shadow", "2", reason="also")
        listed = registry.versions()
        assert [v.version for v in listed] == ["1", "2", "3"]
        assert [v.aliases for v in listed] == [(), ("production", "shadow"), ()]

    @pytest.mark.parametrize("ref", ["7", "production", "latest", ""])
    def test_get_unknown_ref_is_not_found(self, registry: ModelRegistry, ref: str) -> None:
        registry.register(model_files(), model_metadata())
        with pytest.raises(ModelNotFound):
            registry.get(ref)

    def test_concurrent_registrations_get_distinct_versions(self, registry: ModelRegistry) -> None:
        def register_some(tag: str) -> None:
            for i in range(5):
                registry.register(model_files(f"{tag}{i}"), model_metadata())

        threads = [threading.Thread(target=register_some, args=(t,)) for t in "abcd"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [v.version for v in registry.versions()] == [str(n) for n in range(1, 21)]
        for record in registry.versions():
            registry.open(record.version)

    # -- reading artifacts ------------------------------------------------------

    def test_open_returns_every_file_verified(self, registry: ModelRegistry) -> None:
        registry.register(model_files("a"), model_metadata())
        registry.register(model_files("b"), model_metadata(500.0))
        registry.set_alias("production", "2", reason="better")
        loaded = registry.open("production")
        assert loaded.version.version == "2"
        assert loaded.files == model_files("b")
        assert loaded.metadata["metrics"]["mae_s"] == 500.0
        assert registry.read_file("1", "p90.txt") == model_files("a")["p90.txt"]

    def test_read_file_unknown_name_is_not_found(self, registry: ModelRegistry) -> None:
        registry.register(model_files(), model_metadata())
        with pytest.raises(ModelNotFound, match=r"p99\.txt"):
            registry.read_file("1", "p99.txt")

    @pytest.mark.parametrize(
        "damage",
        [b"", b"\x00garbage\xff", b"tree\nversion=v4\nquantile=0.5 b\n", None],
        ids=["truncated", "garbage", "edited-same-size", "removed"],
    )
    def test_tampered_artifact_is_refused_on_every_load(
        self, registry: ModelRegistry, registry_backend: RegistryBackend, damage: bytes | None
    ) -> None:
        registry.register(model_files("a"), model_metadata())
        registry.set_alias("production", "1", reason="only one")
        registry_backend.tamper("1", "p50.txt", damage)
        with pytest.raises(ModelIntegrityError, match="p50"):
            registry.open("production")
        with pytest.raises(ModelIntegrityError, match="p50"):
            registry.read_file("1", "p50.txt")
        assert registry.read_file("1", "p90.txt") == model_files("a")["p90.txt"]

    # -- aliases ---------------------------------------------------------------

    def test_set_alias_accepts_a_version_or_an_alias(self, registry: ModelRegistry) -> None:
        for tag in "ab":
            registry.register(model_files(tag), model_metadata())
        registry.set_alias("canary", "2", reason="try it")
        change = registry.set_alias("production", "canary", reason="canary went well")
        assert (change.alias, change.version, change.previous) == ("production", "2", None)
        assert registry.get("production").version == "2"

    def test_set_alias_refusals(self, registry: ModelRegistry) -> None:
        registry.register(model_files(), model_metadata())
        with pytest.raises(ConfigError, match="prod"):
            registry.set_alias("prod", "1", reason="typo")
        with pytest.raises(ModelNotFound):
            registry.set_alias("production", "9", reason="no such version")
        registry.set_alias("production", "1", reason="first")
        with pytest.raises(RegistryConflict, match="already"):
            registry.set_alias("production", "1", reason="again")
        assert len(registry.alias_history("production")) == 1

    def test_alias_history_records_who_when_and_why(
        self, registry: ModelRegistry, clock: ManualClock
    ) -> None:
        for tag in "ab":
            registry.register(model_files(tag), model_metadata())
        registry.set_alias("production", "1", reason="first")
        clock.advance(3600)
        registry.set_alias("production", "2", reason="retrained")
        registry.set_alias("shadow", "1", reason="unrelated")
        history = registry.alias_history("production")
        assert [(c.previous, c.version, c.reason, c.kind) for c in history] == [
            (None, "1", "first", "set"),
            ("1", "2", "retrained", "set"),
        ]
        assert [c.changed_at for c in history] == [START, START + timedelta(hours=1)]
        with pytest.raises(ConfigError):
            registry.alias_history("nope")

    def test_rollback_goes_back_one_holder_at_a_time(
        self, registry: ModelRegistry, clock: ManualClock
    ) -> None:
        for tag in "abc":
            registry.register(model_files(tag), model_metadata())
            registry.set_alias("production", str(len(registry.versions())), reason="new")
        clock.advance(60)
        change = registry.rollback("production", reason="p90 coverage fell")
        assert (change.previous, change.version, change.kind) == ("3", "2", "rollback")
        assert change.changed_at == START + timedelta(seconds=60)
        assert registry.get("production").version == "2"
        assert registry.rollback("production").version == "1"
        with pytest.raises(RegistryConflict, match="no earlier"):
            registry.rollback("production")
        assert registry.get("production").version == "1"

    def test_rollback_after_a_new_promotion_returns_to_the_last_holder(
        self, registry: ModelRegistry
    ) -> None:
        for tag in "abc":
            registry.register(model_files(tag), model_metadata())
        registry.set_alias("production", "1", reason="a")
        registry.set_alias("production", "2", reason="b")
        registry.rollback("production")
        registry.set_alias("production", "3", reason="c")
        assert registry.rollback("production").version == "1"

    def test_rollback_of_a_never_set_alias_is_refused(self, registry: ModelRegistry) -> None:
        with pytest.raises(RegistryConflict):
            registry.rollback("canary")
        with pytest.raises(ConfigError):
            registry.rollback("staging")

    def test_clearing_an_alias_can_be_rolled_back(self, registry: ModelRegistry) -> None:
        registry.register(model_files(), model_metadata())
        registry.set_alias("canary", "1", reason="ramp")
        cleared = registry.set_alias("canary", None, reason="ramp over")
        assert (cleared.previous, cleared.version) == ("1", None)
        with pytest.raises(ModelNotFound, match="canary"):
            registry.get("canary")
        assert registry.rollback("canary").version == "1"

    # -- delete and gc ---------------------------------------------------------

    def test_delete_refuses_aliased_versions(self, registry: ModelRegistry) -> None:
        registry.register(model_files(), model_metadata())
        registry.set_alias("shadow", "1", reason="watch")
        with pytest.raises(RegistryConflict, match="shadow"):
            registry.delete("1")
        registry.open("1")

    def test_deleted_versions_are_gone_and_never_reused(self, registry: ModelRegistry) -> None:
        for tag in "ab":
            registry.register(model_files(tag), model_metadata())
        registry.delete("2")
        with pytest.raises(ModelNotFound):
            registry.get("2")
        with pytest.raises(ModelNotFound):
            registry.delete("2")
        assert registry.register(model_files("c"), model_metadata()).version == "3"
        assert registry.open("3").files == model_files("c")

    def test_rollback_to_a_deleted_version_is_refused(self, registry: ModelRegistry) -> None:
        for tag in "ab":
            registry.register(model_files(tag), model_metadata())
        registry.set_alias("production", "1", reason="a")
        registry.set_alias("production", "2", reason="b")
        registry.delete("1")
        with pytest.raises(RegistryConflict, match="deleted"):
            registry.rollback("production")
        assert registry.get("production").version == "2"

    def test_gc_keeps_the_newest_the_aliased_and_rollback_targets(
        self, registry: ModelRegistry
    ) -> None:
        for n in range(1, 9):
            registry.register(model_files(str(n)), model_metadata())
        registry.set_alias("production", "2", reason="a")
        registry.set_alias("production", "3", reason="b")
        registry.set_alias("shadow", "5", reason="c")
        assert registry.gc(2, dry_run=True) == ["1", "4", "6"]
        assert len(registry.versions()) == 8
        assert registry.gc(2) == ["1", "4", "6"]
        assert [v.version for v in registry.versions()] == ["2", "3", "5", "7", "8"]
        for record in registry.versions():
            registry.open(record.version)
        assert registry.gc(2) == []
        assert registry.rollback("production").version == "2"

    def test_gc_keep_zero_keeps_only_protected(self, registry: ModelRegistry) -> None:
        for tag in "abc":
            registry.register(model_files(tag), model_metadata())
        registry.set_alias("canary", "2", reason="a")
        assert registry.gc(0) == ["1", "3"]
        with pytest.raises(ConfigError, match="keep_last"):
            registry.gc(-1)
