"""bench/train_contention.py: its help, and how it turns runs into ratios."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "train_contention.py"


@pytest.fixture(scope="module")
def contention(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("train_contention")


def test_help_names_the_scenarios() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    )
    for word in ("--repeats", "--env", "--check", "beside_busy", "two_at_once"):
        assert word in done.stdout


def test_ratios_are_to_the_median_alone_of_the_same_run(contention: ModuleType) -> None:
    report = contention.summarise(
        {"alone": [10.0, 12.0, 11.0], "beside_busy": [25.0, 20.0, 21.0], "two_at_once": [30.0]}
    )
    assert report["median_s"] == {"alone": 11.0, "beside_busy": 21.0, "two_at_once": 30.0}
    assert report["ratio_to_alone"] == {"alone": 1.0, "beside_busy": 1.91, "two_at_once": 2.73}
    assert report["meets_targets"] == {"beside_busy": True, "two_at_once": False}


def test_children_decide_their_own_threads(contention: ModuleType) -> None:
    from arrive import cores

    env = {
        "PATH": "/bin",
        "OMP_WAIT_POLICY": "PASSIVE",
        cores.SET_MARKER: "OMP_WAIT_POLICY=PASSIVE",
    }
    assert contention.child_env(env, {"ARRIVE_THREADS": "1"}) == {
        "PATH": "/bin",
        "ARRIVE_THREADS": "1",
    }
