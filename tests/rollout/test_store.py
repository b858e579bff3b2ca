"""The rollout store: the contract on both backends, then what only files do (other
handles see a change within a second, a read-only or garbled registry keeps the last
state, a restarted worker reads the same assignment)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from arrive.clock import ManualClock
from arrive.errors import InternalError
from arrive.registry import InMemoryRegistry, LocalRegistry
from arrive.registry.base import ModelRegistry
from arrive.rollout.control import Rollouts
from arrive.rollout.store import AUDIT_FILE, STATE_FILE, LocalRolloutStore, rollout_store
from arrive.testing.registry_contract import START, model_files, model_metadata
from arrive.testing.rollout_contract import PLAN, RolloutStoreContract, no_check


@pytest.fixture(params=["memory", "local"])
def rollout_registry(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> ModelRegistry:
    if request.param == "memory":
        return InMemoryRegistry(clock=clock)
    return LocalRegistry(tmp_path / "registry", clock=clock)


class TestRolloutStore(RolloutStoreContract):
    pass


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def local(tmp_path: Path, clock: ManualClock) -> Rollouts:
    registry = LocalRegistry(tmp_path / "registry", clock=clock)
    for tag in "ab":
        registry.register(model_files(tag), model_metadata())
    registry.set_alias("production", "1", reason="first")
    return Rollouts(registry, clock=clock, verify=no_check)


def _worker(local: Rollouts, clock: ManualClock) -> LocalRolloutStore:
    return LocalRolloutStore(local.store.root, clock=clock)  # type: ignore[attr-defined]


def test_a_worker_sees_a_change_within_a_second(local: Rollouts, clock: ManualClock) -> None:
    worker = _worker(local, clock)
    assert worker.current() is None
    started = local.start("2", PLAN, actor="ana")
    clock.advance(1.0)
    assert worker.current() == started
    paused = local.pause(actor="ana")
    clock.advance(1.0)
    assert worker.current() == paused


def test_current_reads_the_file_only_when_it_changed(
    local: Rollouts, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.start("2", PLAN, actor="ana")
    worker = _worker(local, clock)
    reads = []
    real_read = worker.read
    monkeypatch.setattr(worker, "read", lambda: reads.append(1) or real_read())
    for _ in range(5):
        worker.current()
        clock.advance(1.0)
    assert len(reads) == 1


def test_a_restarted_worker_reads_the_same_salt_and_share(
    local: Rollouts, clock: ManualClock
) -> None:
    local.start("2", PLAN, actor="ana")
    before = _worker(local, clock).current()
    after = _worker(local, clock).current()
    assert before is not None
    assert after is not None
    assert before.traffic() == after.traffic()


def test_a_garbled_state_file_keeps_the_last_state(local: Rollouts, clock: ManualClock) -> None:
    started = local.start("2", PLAN, actor="ana")
    worker = _worker(local, clock)
    assert worker.current() == started
    (local.store.root / STATE_FILE).write_bytes(b'{"id": "half a fi')  # type: ignore[attr-defined]
    clock.advance(1.0)
    assert worker.current() == started
    with pytest.raises(InternalError, match="not a rollout state"):
        local.status()


@pytest.fixture
def read_only(local: Rollouts) -> Iterator[Path]:
    """The registry directory bind-mounted read-only over itself (needs root)."""
    root: Path = local.store.root  # type: ignore[attr-defined]
    root.mkdir(parents=True, exist_ok=True)
    yield root
    subprocess.run(["umount", str(root)], check=False, capture_output=True)


def _make_read_only(root: Path) -> None:
    for command in (
        ["mount", "--bind", str(root), str(root)],
        ["mount", "-o", "remount,ro,bind", str(root)],
    ):
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.strip()}")


def test_a_read_only_registry_refuses_changes_and_workers_keep_the_state(
    local: Rollouts, clock: ManualClock, read_only: Path
) -> None:
    started = local.start("2", PLAN, actor="ana")
    worker = _worker(local, clock)
    assert worker.current() == started
    _make_read_only(read_only)
    with pytest.raises(InternalError, match=r"Read-only file system.*serving keeps the last state"):
        local.pause(actor="ana")
    clock.advance(1.0)
    assert worker.current() == started
    assert _worker(local, clock).current() == started  # a worker started now reads it too
    assert len(local.audit()) == 1


def test_the_memory_registry_keeps_one_store(clock: ManualClock) -> None:
    registry = InMemoryRegistry(clock=clock)
    assert rollout_store(registry) is rollout_store(registry)
    assert rollout_store(InMemoryRegistry()) is not rollout_store(registry)


def test_a_line_torn_by_a_crash_is_skipped_and_the_next_entry_starts_afresh(
    local: Rollouts,
) -> None:
    local.start("2", PLAN, actor="ana")
    audit = local.store.root / AUDIT_FILE  # type: ignore[attr-defined]
    with audit.open("ab") as handle:
        handle.write(b'{"rollout":"2-1","revision":2,"at":"2024-03-0')
    assert [e.target for e in local.audit()] == ["shadow"]
    local.pause(actor="ana")
    assert [e.target for e in local.audit()] == ["shadow", "paused (shadow)"]
