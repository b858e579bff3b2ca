"""`arrive demo --rollout` end to end on a small simulated market: the better candidate
ramps to production on the guardrails' evidence, the broken one is rolled back."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from arrive.cli.main import run
from arrive.registry import LocalRegistry
from arrive.rollout.control import Rollouts


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("rollout-demo")
    args = ["demo", "--simulate", "--days", "4", "--orders-per-day", "2000", "--rollout"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run([*args, "--workdir", str(workdir), "--quiet"])
    assert code == 0, out.getvalue()
    return workdir, out.getvalue()


@pytest.mark.slow
def test_the_better_candidate_is_promoted_and_the_broken_one_rolled_back(
    demo: tuple[Path, str],
) -> None:
    workdir, out = demo
    registry = LocalRegistry(workdir / "registry")
    first, better, broken = (v.version for v in registry.versions())
    assert registry.get("production").version == better
    audit = Rollouts(registry).audit()
    by_rollout = {e.rollout: e for e in audit}  # the last entry of each
    moves = [(e.source, e.target) for e in audit if e.actor == "guardrails"]
    assert moves[:3] == [
        ("shadow", "canary 50 %"),
        ("canary 50 %", "canary 100 %"),
        ("canary 100 %", "done"),
    ]
    assert [e.target for e in by_rollout.values()] == ["done", "rolled_back"]
    last = list(by_rollout.values())[-1]
    assert last.actor == "guardrails"
    assert last.reason.startswith("worse: p50_mae +")
    lines = [line for line in out.splitlines() if line.startswith("rollout ")]
    assert lines[0].startswith(f"rollout {better}-1 (version {better} against {first}): promoted")
    assert lines[1].startswith(
        f"rollout {broken}-2 (version {broken} against {better}): rolled back"
    )


def test_the_broken_candidate_really_is_worse_offline(demo: tuple[Path, str]) -> None:
    workdir, _ = demo
    registry = LocalRegistry(workdir / "registry")
    maes = {v.version: v.metrics["mae_s"] for v in registry.versions()}
    production, better, broken = maes.values()
    assert broken > 1.2 * production  # label +30 %: far worse on the true label
    assert broken > 1.2 * better


def test_the_live_report_shows_the_rollout_timeline(demo: tuple[Path, str]) -> None:
    html = (demo[0] / "live" / "report.html").read_text()
    section = html[html.index("<h2>Rollouts</h2>") :]
    assert 'aria-label="Rollouts over replay time"' in section
    for table in ("Orders per state", "Decisions (the audit log)", "Guardrail evaluations"):
        assert table in section
    assert "rolled_back" in section


def test_rollout_with_no_live_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["demo", "--rollout", "--no-live", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "error: --rollout: cannot be combined with --no-live"
