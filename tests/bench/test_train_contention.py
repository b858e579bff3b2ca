"""bench/train_contention.py: its help, and how it turns runs into ratios."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "train_contention.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_contention", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_names_the_scenarios() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    )
    for word in ("--repeats", "--env", "--check", "beside_busy", "two_at_once"):
        assert word in done.stdout


def test_ratios_are_to_the_median_alone_of_the_same_run() -> None:
    report = _module().summarise(
        {"alone": [10.0, 12.0, 11.0], "beside_busy": [25.0, 20.0, 21.0], "two_at_once": [30.0]}
    )
    assert report["median_s"] == {"alone": 11.0, "beside_busy": 21.0, "two_at_once": 30.0}
    assert report["ratio_to_alone"] == {"alone": 1.0, "beside_busy": 1.91, "two_at_once": 2.73}
    assert report["meets_targets"] == {"beside_busy": True, "two_at_once": False}


def test_children_decide_their_own_threads() -> None:
    from arrive import cores

    env = {
        "PATH": "/bin",
        "OMP_WAIT_POLICY": "PASSIVE",
        cores.SET_MARKER: "OMP_WAIT_POLICY=PASSIVE",
    }
    assert _module().child_env(env, {"ARRIVE_THREADS": "1"}) == {
        "PATH": "/bin",
        "ARRIVE_THREADS": "1",
    }
