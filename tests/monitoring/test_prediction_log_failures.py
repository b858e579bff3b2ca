"""The prediction log when the disk fails: answers go on, every lost record is counted by
reason, no unreadable file is ever published, one line per episode, and writing resumes
on the next flush once the disk is back.

Disk-full is injected through the opener seam (a fake file wrapping a real one) and,
for real, on a 64 KiB tmpfs; a directory replaced by a file is a real OS failure.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from arrive.clock import ManualClock
from arrive.monitoring import metrics
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.testing.disk import FullDisk

pytestmark = pytest.mark.faults

START = datetime(2025, 3, 3, 12, tzinfo=UTC)
REASONS = ("buffer_full", "no_space", "not_permitted", "not_found", "io_error")
LOGGER = "arrive.monitoring.prediction_log"


def _orders(first: int, count: int, at: datetime = START) -> Predictions:
    """``count`` predictions, ``o{first}`` onwards; random request ids, so that they take
    room on disk even compressed."""
    ids = range(first, first + count)
    return Predictions(
        [uuid.uuid4().hex for _ in ids],
        [f"o{i}" for i in ids],
        at,
        ["production"] * count,
        ["3"] * count,
        [{"distance_km": float(i), "store_id": f"s{i}"} for i in ids],
        [600.0] * count,
        [900.0] * count,
        [None] * count,
    )


def _ids(first: int, count: int) -> list[str]:
    return [f"o{i}" for i in range(first, first + count)]


def _published(directory: Path) -> list[str]:
    """The order ids of every ``.parquet`` file in ``directory``, each read back whole (a
    file without its footer fails here), after checking no temporary file is left."""
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []
    files = sorted(directory.glob("*.parquet"))
    return [i for path in files for i in pq.read_table(path).column("order_id").to_pylist()]


def _hidden(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".")]


def _counters() -> dict[str, float]:
    """The prediction-log counters now, to compare before and after."""
    values = {"written": metrics.LOG_WRITTEN._value.get()}
    for reason in REASONS:
        values[f"dropped {reason}"] = metrics.LOG_DROPPED.labels(reason)._value.get()
        values[f"failures {reason}"] = metrics.LOG_FAILURES.labels(reason)._value.get()
    return values


def _moved(before: dict[str, float]) -> dict[str, float]:
    """The counters that moved since ``before``, and by how much."""
    now = _counters()
    return {name: now[name] - value for name, value in before.items() if now[name] != value}


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    records = [r for r in caplog.records if r.name == LOGGER]
    assert all(r.exc_info is None for r in records)  # one line each, never a traceback
    return [(r.levelname, r.getMessage()) for r in records]


def test_a_full_disk_drops_by_reason_logs_once_and_recovers_on_the_next_flush(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(START)
    disk = FullDisk()
    log = PredictionLog(tmp_path, clock, rotate_s=600, opener=disk)
    before = _counters()
    log.extend(_orders(0, 2))
    assert log.flush() == 2
    assert log.written == 0  # in the file in progress: not readable yet, not counted
    disk.free_bytes = 100  # the next row group fits only in part
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for first in (2, 5, 8):
            log.extend(_orders(first, 3))
            assert log.flush() == 0
            assert log.failing == "no_space"
        disk.free_bytes = None  # space is back: the very next flush writes
        log.extend(_orders(11, 2))
        assert log.flush() == 2
    assert log.failing is None
    assert log.dropped == {"no_space": 11}  # the 2 of the lost file, then 3 × 3
    assert _lines(caplog) == [
        (
            "ERROR",
            f"prediction log: cannot write to {tmp_path} (no_space: [Errno 28] No space left "
            f"on device: '{disk.opened[0]}'); records are dropped and counted until writing "
            "works again",
        ),
        (
            "WARNING",
            f"prediction log: writing to {tmp_path} again (11 records dropped while it failed)",
        ),
    ]
    assert len(_hidden(tmp_path)) == 1  # the new file in progress; the broken ones are gone
    clock.advance(600)
    log.flush()  # rotation publishes it
    assert _published(tmp_path) == _ids(11, 2)
    assert log.written == 2
    assert _moved(before) == {"written": 2, "dropped no_space": 11, "failures no_space": 3}


def test_a_file_whose_footer_does_not_fit_is_never_published(tmp_path: Path) -> None:
    disk = FullDisk()
    log = PredictionLog(tmp_path, ManualClock(START), opener=disk)
    before = _counters()
    log.extend(_orders(0, 300))
    assert log.flush() == 300
    disk.free_bytes = 10
    log.close()  # the footer does not fit: the file is dropped, not published
    assert list(tmp_path.iterdir()) == []
    assert (log.dropped, log.written, log.failing) == ({"no_space": 300}, 0, "no_space")
    disk.free_bytes = None
    log.extend(_orders(300, 1))
    log.close()
    assert _published(tmp_path) == ["o300"]
    assert _moved(before) == {"written": 1, "dropped no_space": 300, "failures no_space": 1}


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB file system (tmpfs, mounted as root), where writes really hit ENOSPC."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)]
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small file system to fill")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root and CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:  # lazily: a file a failed test left open must not keep the mount
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def _fill(mount: Path) -> Path:
    """Take every free block of ``mount``; deleting the returned file gives them back."""
    filler = mount / "filler"
    with filler.open("wb", buffering=0) as file:
        while os.statvfs(mount).f_bavail:
            file.write(b"\0" * os.statvfs(mount).f_frsize)
    return filler


def test_a_real_file_system_that_fills_up(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tiny_disk / "log"
    clock = ManualClock(START)
    log = PredictionLog(directory, clock, rotate_s=600)
    before = _counters()
    log.extend(_orders(0, 20))
    assert log.flush() == 20
    filler = _fill(tiny_disk)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for first in (20, 320):
            log.extend(_orders(first, 300))
            assert log.flush() == 0
        clock.advance(600)
        log.flush()  # nothing to publish: the file was dropped
        filler.unlink()
        log.extend(_orders(620, 10))
        assert log.flush() == 10
    log.close()
    assert _published(directory) == _ids(620, 10)
    assert log.dropped == {"no_space": 620}
    assert [level for level, _ in _lines(caplog)] == ["ERROR", "WARNING"]
    assert _moved(before) == {"written": 10, "dropped no_space": 620, "failures no_space": 2}


def test_a_directory_replaced_by_a_file_drops_by_reason_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "log"
    clock = ManualClock(START)
    log = PredictionLog(directory, clock, rotate_s=600)
    before = _counters()
    log.extend(_orders(0, 3))
    assert log.flush() == 3
    shutil.rmtree(directory)
    directory.write_bytes(b"a file where the directory was")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        log.extend(_orders(3, 2))
        assert log.flush() == 0  # the file in progress was deleted: its 3 and these 2 lost
        log.extend(_orders(5, 2))
        assert log.flush() == 0  # no directory to open a new file in
        assert log.failing == "not_found"
        directory.unlink()
        log.extend(_orders(7, 2))
        assert log.flush() == 2  # the directory is made again
    log.close()
    assert _published(directory) == _ids(7, 2)
    assert log.dropped == {"not_found": 7}
    assert [level for level, _ in _lines(caplog)] == ["ERROR", "WARNING"]
    assert _moved(before) == {"written": 2, "dropped not_found": 7, "failures not_found": 2}


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Callable[[Path, bool], None]]:
    """Sets or clears a directory's immutable attribute (``chattr +i``): nothing can be
    created, renamed or deleted in it, even by root. Cleared again at the end."""
    changed: list[Path] = []

    def chattr(path: Path, on: bool) -> None:
        done = subprocess.run(
            ["chattr", "+i" if on else "-i", str(path)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            pytest.skip(f"cannot make a directory immutable here: {done.stderr.strip()}")
        changed.append(path)

    if shutil.which("chattr") is None:
        pytest.skip("no chattr command (e2fsprogs): cannot make a directory immutable")
    try:
        yield chattr
    finally:
        for path in changed:
            subprocess.run(["chattr", "-i", str(path)], check=False)


def test_an_immutable_directory_drops_by_reason_and_recovers(
    tmp_path: Path, immutable: Callable[[Path, bool], None], caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "log"
    clock = ManualClock(START)
    log = PredictionLog(directory, clock, rotate_s=600)
    before = _counters()
    log.extend(_orders(0, 3))
    assert log.flush() == 3
    immutable(directory, True)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        clock.advance(600)
        log.extend(_orders(3, 2))
        assert log.flush() == 0  # the complete file cannot be renamed, nor a new one made
        assert log.failing == "not_permitted"
        log.extend(_orders(5, 2))
        assert log.flush() == 0
        immutable(directory, False)
        log.extend(_orders(7, 2))
        assert log.flush() == 2
    log.close()
    assert [level for level, _ in _lines(caplog)] == ["ERROR", "WARNING"]
    assert log.dropped == {"not_permitted": 7}
    assert _moved(before) == {
        "written": 2,
        "dropped not_permitted": 7,
        "failures not_permitted": 3,
    }
    (kept,) = _hidden(directory)  # the file that was never published could not be deleted
    assert kept.endswith("-0.parquet.tmp")
    PredictionLog(directory, clock).clean()  # the next start deletes it
    assert _published(directory) == _ids(7, 2)


def _exited_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_leftovers_of_earlier_runs_are_deleted_before_the_first_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    complete = tmp_path / "predictions-20250303T090000Z-pid7-0.parquet"
    first = PredictionLog(tmp_path, ManualClock(START))
    first.extend(_orders(0, 50))
    first.close()
    first.files()[0].rename(complete)
    whole = complete.read_bytes()
    cut = tmp_path / "predictions-20250303T100000Z-pid7-0.parquet"  # published without footer
    cut.write_bytes(whole[: len(whole) // 2])
    gone = tmp_path / f".predictions-20250303T110000Z-pid{_exited_pid()}-0.parquet.tmp"
    gone.write_bytes(whole[:100])
    ours = tmp_path / f".predictions-20250303T100000Z-pid{os.getpid()}-4.parquet.tmp"
    ours.write_bytes(b"")  # an earlier process had this id: nobody writes it now
    running = tmp_path / f".predictions-20250303T110000Z-pid{os.getppid()}-0.parquet.tmp"
    running.write_bytes(b"PAR1")  # another worker's file in progress: kept
    elsewhere = tmp_path / f".predictions-20250303T110000Z-web-2-pid{_exited_pid()}-0.parquet.tmp"
    elsewhere.write_bytes(b"PAR1")  # another host's (a replica sharing the volume): kept
    notes = tmp_path / "notes.txt"
    notes.write_text("not the log's")
    log = PredictionLog(tmp_path, ManualClock(START))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        log.extend(_orders(50, 1))
        log.flush()
        log.clean()  # only the first call acts
    deleted = " ".join(sorted(p.name for p in (cut, gone, ours)))
    assert _lines(caplog) == [
        ("WARNING", f"prediction log: deleted 3 leftovers of earlier runs in {tmp_path}: {deleted}")
    ]
    running.unlink()
    assert elsewhere.exists()
    elsewhere.unlink()
    log.close()
    assert _published(tmp_path) == [*_ids(0, 50), "o50"]
    assert notes.exists()
