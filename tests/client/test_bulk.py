"""bulk_predict against the scripted server: failures reported per row, a re-run
resumes from the output (or from the journal a crash left), never another input's."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest
from tests.client.conftest import Scripted

from arrive.client import EtaClient, Retry
from arrive.errors import InputFileError

ROWS = [{"order_id": f"o-{i}", "items": 1 + i % 4} for i in range(20)]
QUICK = Retry(attempts=1, rng=random.Random(2))


def test_a_failed_batch_is_reported_then_resumed(scripted: Scripted, tmp_path: Path) -> None:
    out = tmp_path / "etas.csv"
    scripted.max_batch = 5
    scripted.error(500, "boom")  # the first batch (rows 0-4) fails
    with EtaClient(scripted.url, retry=QUICK) as client:  # one request at a time: 0-4 first
        first = client.bulk_predict(
            ROWS, processes=1, batch_size=5, in_flight=1, out=out, progress=False
        )
    assert first.failed == 5
    assert pl.read_csv(out).filter(pl.col("status") == "error")["row"].to_list() == [0, 1, 2, 3, 4]

    scripted.asked.clear()
    with EtaClient(scripted.url, retry=QUICK) as client:
        again = client.bulk_predict(ROWS, processes=1, batch_size=5, out=out, progress=False)
    sent = [o["order_id"] for _, _, body in scripted.asked for o in body["orders"]]
    assert sent == [f"o-{i}" for i in range(5)]  # only the failed rows
    assert (again.failed, again.skipped) == (0, 15)
    frame = pl.read_csv(out)
    assert frame["order_id"].to_list() == [r["order_id"] for r in ROWS]
    assert frame["status"].unique().to_list() == ["ok"]


def test_a_crash_journal_is_resumed_and_its_torn_line_skipped(
    scripted: Scripted, tmp_path: Path
) -> None:
    out = tmp_path / "etas.jsonl"
    journal = tmp_path / "etas.jsonl.partial.jsonl"
    with EtaClient(scripted.url) as client:
        done = client.bulk_predict(ROWS[:8], processes=1, progress=False).frame.to_dicts()
    lines = [json.dumps(r) for r in done]
    journal.write_text("\n".join(lines) + '\n{"row": 8, "order_id": "o-')  # torn by a crash
    scripted.asked.clear()
    with EtaClient(scripted.url) as client:
        result = client.bulk_predict(ROWS, processes=1, batch_size=50, out=out, progress=False)
    sent = [o["order_id"] for _, _, body in scripted.asked for o in body["orders"]]
    assert sorted(sent) == sorted(f"o-{i}" for i in range(8, 20))  # each once, in any order
    assert result.skipped == 8
    assert pl.read_ndjson(out)["row"].to_list() == list(range(20))
    assert not journal.exists()


def test_an_output_of_another_input_is_refused(scripted: Scripted, tmp_path: Path) -> None:
    out = tmp_path / "etas.parquet"
    with EtaClient(scripted.url) as client:
        client.bulk_predict(ROWS, processes=1, out=out, progress=False)
        other = [{"order_id": f"x-{i}"} for i in range(20)]
        with pytest.raises(InputFileError, match="another input"):
            client.bulk_predict(other, processes=1, out=out, progress=False)


def test_an_output_of_unknown_format_is_refused_before_work(scripted: Scripted) -> None:
    with EtaClient(scripted.url) as client, pytest.raises(InputFileError, match=r"\.jsonl"):
        client.bulk_predict(ROWS, out="etas.xlsx", progress=False)
    assert scripted.asked == []


@pytest.mark.parametrize("in_flight", [1, 2])
def test_a_process_keeps_in_flight_requests_on_the_wire(scripted: Scripted, in_flight: int) -> None:
    scripted.hold_s = 0.05
    with EtaClient(scripted.url) as client:
        result = client.bulk_predict(
            ROWS[:12], processes=1, batch_size=3, in_flight=in_flight, progress=False
        )
    assert scripted.most_open == in_flight
    assert result.frame["order_id"].to_list() == [r["order_id"] for r in ROWS[:12]]
    assert result.failed == 0
