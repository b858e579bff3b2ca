"""Rollouts served by ``arrive serve`` with two workers on a real Redis: both follow a
rollout started while they run, split units at the step's share and keep each unit on
its variant across workers and restarts; shadow rows reach the prediction log; a
candidate whose files are broken stops the rollout while the service keeps answering.

The tests run in order on one module-scoped registry and service."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from arrive.monitoring.log_reader import read_log
from arrive.monitoring.prediction_log import published
from arrive.registry import LocalRegistry
from arrive.rollout.assignment import Assigner, unit_key
from arrive.rollout.control import Rollouts
from arrive.rollout.plan import RolloutPlan
from arrive.rollout.state import Rollout
from arrive.testing.servers.eta_service import ServiceProbe
from arrive.testing.servers.redis_server import RedisServer

from .conftest import FaultData, StartServiceProbe

pytestmark = [pytest.mark.redis, pytest.mark.faults, pytest.mark.slow]
CANARY = RolloutPlan(shadow_minutes=0, steps=(25.0, 100.0))
SHADOW = RolloutPlan(shadow_minutes=60, steps=(25.0, 100.0))
UNITS = 2000


class Rig:
    """The module's registry (the fault suite's model, and a copy of it as version 2),
    its rollouts, the running service and its prediction-log directory."""

    def __init__(self, root: Path, log_dir: Path, start: StartServiceProbe, env: dict[str, str]):
        self.registry = LocalRegistry(root)
        self.rollouts = Rollouts(self.registry, verify=lambda _registry, _version: None)
        self.log_dir = log_dir
        self._start, self._env = start, env
        self.service = start(env, workers=2)

    def restart(self) -> None:
        assert self.service.process is not None
        self.service.process.stop()
        self.service = self._start(self._env, workers=2)

    def start(self, version: str, plan: RolloutPlan) -> Rollout:
        """Start a rollout, and wait until both workers serve it (20 answers in a row on
        fresh connections, spread over the workers by the kernel, name it)."""
        rollout = self.rollouts.start(version, plan, actor="test")
        body = {"order_id": "probe", "customer_id": "probe"}
        streak = [0]

        def served() -> bool:
            streak[0] = streak[0] + 1 if self.service.eta(body)["rollout"] == rollout.id else 0
            return streak[0] >= 20

        self.service.wait(served, f"both workers to serve rollout {rollout.id}")
        return rollout


@pytest.fixture(scope="module")
def rig(
    fault_data: FaultData,
    redis: RedisServer,
    start_module_service: StartServiceProbe,
    tmp_path_factory: pytest.TempPathFactory,
) -> Rig:
    work = tmp_path_factory.mktemp("rollout")
    root = work / "registry"
    shutil.copytree(fault_data.registry_dir, root)
    registry = LocalRegistry(root)
    production = registry.get("production").version
    registry.register(dict(registry.open(production).files), {"note": "copy of production"})
    env = {
        "ARRIVE_STORE_URL": redis.url,
        "ARRIVE_REGISTRY_DIR": str(root),
        "ARRIVE_PREDICTION_LOG_DIR": str(work / "predictions"),
        "ARRIVE_PREDICTION_LOG_ROTATE_S": "0.5",
    }
    return Rig(root, work / "predictions", start_module_service, env)


def _variants(service: ServiceProbe, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    for start in range(0, len(bodies), 500):
        status, body = service.request(
            "POST", "/v1/eta/batch", {"orders": bodies[start : start + 500]}
        )
        assert status == 200, body
        answers += body["answers"]
    return answers


def test_a_rollout_started_while_serving_splits_units_at_its_share_sticky_across_workers(
    rig: Rig, fault_data: FaultData
) -> None:
    production = rig.registry.get("production").version
    candidate = str(len(rig.registry.versions()))
    rollout = rig.start(candidate, CANARY)
    assigner = Assigner(bytes.fromhex(rollout.salt))
    template = fault_data.orders[-1]
    bodies = [{**template, "order_id": f"o{i}", "customer_id": f"c{i}"} for i in range(UNITS)]
    answers = _variants(rig.service, bodies)
    expected = [
        assigner.variant(unit_key("customer", order_id="", customer_id=f"c{i}"), 0.25)
        for i in range(UNITS)
    ]
    assert [a["variant"] for a in answers] == expected
    assert {a["rollout"] for a in answers} == {rollout.id}
    share = sum(v == "candidate" for v in expected) / UNITS
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / UNITS)  # binomial noise
    versions = {(a["variant"], a["model_version"]) for a in answers if a["fallback"] is None}
    assert versions == {("control", production), ("candidate", candidate)}

    # one request per connection: each customer lands on either worker, every time
    for i in range(40):
        seen = {rig.service.eta(bodies[i])["variant"] for _ in range(3)}
        assert seen == {expected[i]}, f"customer c{i}"

    rig.restart()  # new worker processes: the same assignment, from the stored salt
    rig.service.wait(
        lambda: rig.service.eta(bodies[0])["rollout"] == rollout.id, "the restarted service"
    )
    again = _variants(rig.service, bodies[:500])
    assert [a["variant"] for a in again] == expected[:500]
    rig.rollouts.abort(actor="test")


def test_shadow_predictions_reach_the_prediction_log(rig: Rig, fault_data: FaultData) -> None:
    candidate = str(len(rig.registry.versions()))
    rollout = rig.start(candidate, SHADOW)
    answers = [rig.service.eta(body) for body in fault_data.orders]
    assert {(a["variant"], a["rollout"]) for a in answers} == {("control", rollout.id)}
    scored = {a["request_id"] for a in answers if a["fallback"] is None}
    assert len(scored) >= len(answers) // 2

    def shadow_rows() -> pl.DataFrame:
        frames = [read_log(path) for path in published(rig.log_dir)]
        rows = pl.concat(frames) if frames else pl.DataFrame({"variant": [], "rollout": []})
        return rows.filter((pl.col("variant") == "shadow") & (pl.col("rollout") == rollout.id))

    rig.service.wait(lambda: set(shadow_rows()["request_id"]) >= scored, "the shadow rows")
    assert set(shadow_rows()["model_version"]) == {candidate}
    rig.service.wait(lambda: rig.service.metric("arrive_shadow_scored_total") > 0, "the count")
    rig.rollouts.abort(actor="test")


def test_a_broken_candidate_stops_the_rollout_and_the_service_answers(
    rig: Rig, fault_data: FaultData
) -> None:
    production = rig.registry.get("production").version
    files = dict(rig.registry.open(production).files)
    broken = rig.registry.register({**files, "model.json": b"{not json"}, {}).version
    rollout = rig.rollouts.start(broken, CANARY, actor="test")

    def stopped() -> bool:  # the audit line is appended just after the state is written
        last = rig.rollouts.audit()[-1]
        return last.rollout == rollout.id and last.target == "aborted"

    rig.service.wait(stopped, "the rollout to be stopped", timeout_s=60)
    now = rig.rollouts.status()
    assert now is not None
    assert (now.id, now.phase) == (rollout.id, "aborted")
    entry = rig.rollouts.audit()[-1]
    assert entry.actor == "serving"
    assert f"candidate version {broken} failed to load" in entry.reason
    answers = [rig.service.eta(body) for body in fault_data.orders]
    assert {(a["variant"], a["rollout"]) for a in answers} == {("production", None)}
    assert sum(a["model_version"] == production for a in answers) >= len(answers) // 2
