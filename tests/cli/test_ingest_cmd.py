"""`arrive ingest` from the command line: a replay into the in-process store and into a
real Redis, and a user's mistakes answered with one line (exit 2, no traceback)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from arrive import datadir
from arrive.cli.main import run
from arrive.features.online.parts import PIPELINE_KEY
from arrive.store.redis import RedisStore, RedisStoreConfig
from arrive.testing.factories import random_marketplace, write_data_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("ingest-cli")
    return write_data_dir(work / "data", random_marketplace(seed=5, n_orders=200, days=3))


def test_replay_into_the_in_process_store(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = tmp_path / "dead.jsonl"
    code = run(["ingest", "--source", str(data_dir), "--dead-letter", str(dead), "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    events = datadir.scan_events(data_dir).select(pl.len()).collect().item()
    assert f"{events:,} events applied" in err  # every event of the log, none refused
    assert "0 dead-lettered" in err
    assert "(done)" in err
    assert not dead.exists() or dead.read_text() == ""


@pytest.mark.redis
def test_replay_into_redis_writes_the_features(
    data_dir: Path, tmp_path: Path, redis_url: str
) -> None:
    args = ["ingest", "--source", str(data_dir), "--store", redis_url, "--quiet"]
    assert run([*args, "--dead-letter", str(tmp_path / "dead.jsonl")]) == 0
    store = RedisStore(RedisStoreConfig(url=redis_url))
    try:
        (pipeline,) = store.get_many([PIPELINE_KEY])
    finally:
        store.close()
    assert pipeline is not None
    assert pipeline["watermark"].value is not None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--source", "/no/such/dir"], "/no/such/dir"),
        (["--store", "bogus://x"], "store"),
        (["--idle-advance"], "--idle-advance"),
        (["--batch-size", "0"], "--batch-size"),
        (["--lateness-s", "abc"], "--lateness-s"),
        (["--partitioned"], "--partitioned: needs a kafka:// --source and a redis:// --store"),
        (
            [
                *["--partitioned", "--source", "kafka://127.0.0.1:1/t", "--store"],
                *["redis://127.0.0.1:1", "--archive", "/tmp/never-written"],
            ],
            "--archive: the partitioned ingest does not archive",
        ),
    ],
)
def test_mistakes_get_one_line_and_exit_2(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    expected: str,
) -> None:
    args = ["ingest", "--source", str(data_dir), "--dead-letter", str(tmp_path / "d.jsonl")]
    code = run([*args, "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err
    assert "Traceback" not in err
