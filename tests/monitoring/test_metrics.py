"""/metrics over several workers: one worker's values summed, empty files skipped, the live
gauges of gone workers left out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from arrive.monitoring import metrics


def _worker_file(directory: Path, pid: int, answers: float) -> None:
    """The counter file a worker ``pid`` writes, holding ``answers`` model answers."""
    labels = ["variant", "fallback"]
    key = mmap_key(
        "arrive_predictions",
        "arrive_predictions_total",
        labels,
        ["production", "none"],
        "ETA answers by variant and fallback reason",
    )
    _write(directory / f"counter_{pid}.db", key, answers)


def _in_flight_file(directory: Path, pid: int, requests: float) -> None:
    """The live gauge file a worker ``pid`` writes with ``requests`` in flight."""
    key = mmap_key("arrive_in_flight", "arrive_in_flight", [], [], "Requests in progress")
    _write(directory / f"gauge_livesum_{pid}.db", key, requests)


def _write(path: Path, key: str, value: float) -> None:
    values = MmapedDict(str(path))
    values.write_value(key, value, time.time())
    values.close()


def test_workers_are_summed_and_a_file_not_yet_sized_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    _worker_file(tmp_path, 101, 5.0)
    _worker_file(tmp_path, 102, 7.0)
    (tmp_path / "counter_103.db").touch()  # created, not sized yet (or its worker died)
    text, content_type = metrics.render()
    assert 'arrive_predictions_total{fallback="none",variant="production"} 12.0' in (text.decode())
    assert content_type.startswith("text/plain")


def test_the_live_gauges_of_a_gone_worker_are_left_out_and_its_counts_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(gone.stdout)
    _in_flight_file(tmp_path, os.getpid(), 2.0)
    _in_flight_file(tmp_path, dead, 5.0)  # killed mid-request: its gauge never went back
    _worker_file(tmp_path, os.getpid(), 1.0)
    _worker_file(tmp_path, dead, 4.0)
    text = metrics.render()[0].decode()
    assert "arrive_in_flight 2.0" in text.splitlines()
    assert 'arrive_predictions_total{fallback="none",variant="production"} 5.0' in text
