"""Hot reload: the alias moves, requests in flight finish, broken versions are refused."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from arrive.clock import ManualClock
from arrive.errors import RegistryError
from arrive.monitoring import metrics
from arrive.registry import LocalRegistry
from arrive.schema.eta import EtaAnswer
from arrive.serving.wiring import build_predictor
from arrive.store.memory import InMemoryStore
from arrive.testing.artifacts import out_of_range_split, resign
from arrive.testing.stores import GatedStore

CHECK_WAIT_S = 300.0
"""A bound on a reload: each model check is a child process (seconds on a busy machine)."""


def _local(trained: Any, root: Path) -> LocalRegistry:
    registry = LocalRegistry(root)
    registry.register(dict(trained.files), dict(trained.metadata))
    registry.set_alias("production", "1", reason="test")
    return registry


def _serving(predictor: Any) -> str | None:
    current = predictor.slot.current
    return None if current is None else str(current.version)


def _model_version(answers: list[EtaAnswer]) -> set[str | None]:
    return {a.model_version for a in answers}


def test_hot_reload_with_requests_in_flight_fails_none(
    trained: Any,
    settings_for: Any,
    late_orders: Any,
    replay_until: Any,
    eventually: Any,
    tmp_path: Path,
) -> None:
    orders = late_orders(4, every=5)
    at = max(o.event_time for o in orders)
    memory = InMemoryStore()
    replay_until(memory, at)
    registry = _local(trained, tmp_path / "registry")
    registry.register(dict(trained.files), {**trained.metadata, "note": "second"})

    async def run() -> tuple[list[list[EtaAnswer]], list[list[EtaAnswer]], list[EtaAnswer]]:
        store = GatedStore(memory)
        predictor = build_predictor(
            settings_for(reload_interval_s=0.02, deadline_ms=60_000),
            store=store,
            clock=ManualClock(at),
            registry=registry,
        )
        async with predictor:
            old = [asyncio.create_task(predictor.predict(orders, ["a"] * 4)) for _ in range(8)]
            await eventually(lambda: store.waiting == 8)
            registry.set_alias("production", "2", reason="roll out")
            await eventually(lambda: _serving(predictor) == "2", CHECK_WAIT_S)
            new = [asyncio.create_task(predictor.predict(orders, ["b"] * 4)) for _ in range(8)]
            await eventually(lambda: store.waiting == 16)
            store.gate.set()
            done_old = await asyncio.gather(*old)
            done_new = await asyncio.gather(*new)
            after = await predictor.predict(orders, ["c"] * 4)
            return done_old, done_new, after

    done_old, done_new, after = asyncio.run(run())
    for answers in done_old:
        assert len(answers) == 4
        assert _model_version([a for a in answers if a.fallback is None]) == {"1"}
    for answers in done_new:
        assert _model_version([a for a in answers if a.fallback is None]) == {"2"}
    assert {a.fallback for answers in done_old + done_new for a in answers} <= {
        None,
        "stale_features",
    }
    assert "2" in _model_version(after)


def test_a_corrupted_or_unloadable_version_is_refused_and_the_previous_serves(
    trained: Any,
    settings_for: Any,
    late_orders: Any,
    replay_until: Any,
    tmp_path: Path,
) -> None:
    orders = late_orders(3, every=5)
    at = max(o.event_time for o in orders)
    store = InMemoryStore()
    replay_until(store, at)
    registry = _local(trained, tmp_path / "registry")
    corrupt = registry.register(dict(trained.files), dict(trained.metadata)).version
    victim = next(p for p in (tmp_path / "registry/versions" / corrupt).iterdir())
    victim.write_bytes(victim.read_bytes()[:-20] + b"corrupted!corrupted!")
    broken = registry.register({**trained.files, "model.json": b"{}"}, dict(trained.metadata))
    refused = metrics.MODEL_RELOADS.labels("refused")
    before = refused._value.get()

    async def run() -> list[tuple[str, list[EtaAnswer]]]:
        predictor = build_predictor(
            settings_for(), store=store, clock=ManualClock(at), registry=registry
        )
        async with predictor:
            seen = []
            for version in (corrupt, broken.version):
                registry.set_alias("production", version, reason="bad")
                with pytest.raises(RegistryError, match=f"version {version} refused"):
                    await predictor.reload()
                serving = predictor.slot.current.version if predictor.slot.current else ""
                seen.append((serving, await predictor.predict(orders, ["r"] * 3)))
        assert "ModelIntegrityError" in predictor.slot.refused[corrupt]
        assert "fails its model check" in predictor.slot.refused[broken.version]
        assert "malformed" in predictor.slot.refused[broken.version]
        ready, note = predictor.ready()
        assert ready  # a model serves; the note says it is not the alias's
        assert note.startswith(f"serving version 1 instead of production version {broken.version}")
        return seen

    seen = asyncio.run(run())
    for serving, answers in seen:
        assert serving == "1"
        assert _model_version([a for a in answers if a.fallback is None]) == {"1"}
    # the forced reload to version 3 tries version 2 again on its way down to 1
    assert refused._value.get() == before + 3


def test_the_poll_does_not_retry_a_refused_version_until_the_alias_moves(
    trained: Any, settings_for: Any, tmp_path: Path
) -> None:
    registry = _local(trained, tmp_path / "registry")
    bad = registry.register({**trained.files, "model.json": b"{}"}, dict(trained.metadata))
    good = registry.register(dict(trained.files), dict(trained.metadata))
    predictor = build_predictor(settings_for(), store=InMemoryStore(), registry=registry)
    slot = predictor.slot
    assert slot.reload() == "1"
    registry.set_alias("production", bad.version, reason="bad")
    refused = metrics.MODEL_RELOADS.labels("refused")
    before = refused._value.get()
    assert slot.reload() == "1"
    assert slot.reload() == "1"
    assert refused._value.get() == before + 1
    registry.set_alias("production", good.version, reason="fixed")
    assert slot.reload() == good.version


def test_an_admin_reload_reaches_every_worker_sharing_the_file(
    trained: Any, settings_for: Any, eventually: Any, tmp_path: Path
) -> None:
    """Two predictors stand for two worker processes: the admin call reaches one, the
    other follows through the shared file, with alias polling off."""
    registry = _local(trained, tmp_path / "registry")
    registry.register(dict(trained.files), {**trained.metadata, "note": "second"})
    settings = settings_for(reload_interval_s=0.0, kill_switch_file=tmp_path / "control")

    def worker() -> Any:
        predictor = build_predictor(settings, store=InMemoryStore(), registry=registry)
        predictor.config = dataclasses.replace(predictor.config, follow_interval_s=0.02)
        return predictor

    async def run() -> tuple[str | None, str | None]:
        a, b = worker(), worker()
        async with a, b:
            assert (_serving(a), _serving(b)) == ("1", "1")
            registry.set_alias("production", "2", reason="roll out")
            assert (await a.reload()).model_version == "2"
            await eventually(lambda: _serving(b) == "2", CHECK_WAIT_S)
            return _serving(a), _serving(b)

    assert asyncio.run(run()) == ("2", "2")


def _break(registry: LocalRegistry, version: str) -> bytes:
    """Make a booster of ``version`` segfault LightGBM and re-sign the index; returns the
    intact bytes."""
    intact = registry.read_file(version, "booster_q90.txt")
    resign(registry.root, version, "booster_q90.txt", out_of_range_split(intact))
    return intact


def test_the_newest_version_that_passes_its_check_serves_and_says_so(
    trained: Any, settings_for: Any, tmp_path: Path
) -> None:
    registry = _local(trained, tmp_path / "registry")
    registry.register(dict(trained.files), dict(trained.metadata))
    registry.register(dict(trained.files), dict(trained.metadata))
    registry.set_alias("production", "3", reason="test")
    _break(registry, "3")
    predictor = build_predictor(settings_for(), store=InMemoryStore(), registry=registry)
    assert predictor.slot.reload() == "2"
    note = predictor.slot.note or ""
    assert note.startswith("serving version 2 instead of production version 3, which was ")
    assert "crashed the check process (SIGSEGV)" in note
    assert metrics.MODEL_DEGRADED._value.get() == 1.0
    assert predictor.slot.reload() == "2"  # the poll does not check version 3 again
    assert set(predictor.slot.checks) == set()


def test_a_forced_reload_checks_the_files_of_the_version_serving(
    trained: Any, settings_for: Any, tmp_path: Path
) -> None:
    registry = _local(trained, tmp_path / "registry")
    predictor = build_predictor(settings_for(), store=InMemoryStore(), registry=registry)

    async def run() -> tuple[str, tuple[bool, str], Any]:
        async with predictor:
            intact = _break(registry, "1")
            with pytest.raises(RegistryError) as refused:
                await predictor.reload()
            ready = predictor.ready()
            resign(registry.root, "1", "booster_q90.txt", intact)
            return str(refused.value), ready, await predictor.reload()

    refused, (ready, note), restored = asyncio.run(run())
    assert refused.startswith("version 1 refused (ModelIntegrityError: version 1 fails its ")
    assert "crashed the check process (SIGSEGV)" in refused
    assert refused.endswith(
        "version 1 keeps serving from the copy loaded earlier (a restart would not)"
    )
    assert ready
    assert note.startswith("serving version 1 from the copy loaded earlier: its stored files")
    assert restored.model_version == "1"
    assert [(c.version, c.status) for c in restored.checks] == [("1", "ok")]
    assert restored.checks[0].reason.endswith("(files unchanged)")
    assert predictor.ready() == (True, "")


def test_a_broken_booster_does_not_cost_its_version_the_heuristic(
    trained: Any, settings_for: Any, tmp_path: Path
) -> None:
    registry = _local(trained, tmp_path / "registry")
    booster = registry.root / "versions" / "1" / "booster_q50.txt"
    booster.write_bytes(booster.read_bytes()[:100])  # not even re-signed
    predictor = build_predictor(settings_for(), store=InMemoryStore(), registry=registry)
    assert predictor.slot.reload() is None
    heuristic = predictor.slot.fallback.heuristic
    assert heuristic is not None
    assert heuristic.to_dict() == trained.bundle().heuristic.to_dict()
    # the heuristic answers, so the replica is ready; health says why no model serves
    assert predictor.ready()[0] is True
    (problem,) = predictor.health().problems
    assert problem.startswith("no model serves (version 1 refused: ")
