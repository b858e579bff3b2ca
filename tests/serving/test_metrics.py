"""/metrics over several workers: one worker's values summed, empty files skipped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from arrive.serving import metrics


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
    values = MmapedDict(str(directory / f"counter_{pid}.db"))
    values.write_value(key, answers, time.time())
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
