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


@pytest.mark.parametrize("lines_hold", ["columns", "rows"])
def test_a_crash_journal_is_resumed_and_its_torn_line_skipped(
    scripted: Scripted, tmp_path: Path, lines_hold: str
) -> None:
    out = tmp_path / "etas.jsonl"
    journal = tmp_path / "etas.jsonl.partial.jsonl"
    with EtaClient(scripted.url) as client:
        done = client.bulk_predict(ROWS[:8], processes=1, progress=False).frame
    if lines_hold == "columns":  # as a run writes them: a line a few batches
        lines = [
            json.dumps(done[:5].to_dict(as_series=False)),
            json.dumps(done[5:].to_dict(as_series=False)),
        ]
    else:
        lines = [json.dumps(r) for r in done.to_dicts()]
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


def test_an_order_the_service_alone_refuses_is_reported_and_the_rest_sent_again(
    scripted: Scripted,
) -> None:
    scripted.max_batch = 4
    scripted.error(422, "store s-9 is closed", field_name="orders[2].store_id")
    with EtaClient(scripted.url) as client:
        result = client.bulk_predict(ROWS[:4], processes=1, in_flight=1, progress=False)
    frame = result.frame
    assert frame["status"].to_list() == ["ok", "ok", "rejected", "ok"]
    assert frame["error"][2] == "store_id: store s-9 is closed"
    assert frame.row(0, named=True) | {"request_id": None} == {
        "row": 0,
        "order_id": "o-0",
        "status": "ok",
        "error": None,
        "request_id": None,
        "p50_s": 1200.0,
        "p90_s": 1800.0,
        "promised_at": "2026-01-01T00:00:00+00:00",  # as isoformat() writes it
        "model_version": "7",
        "variant": "production",
        "fallback": None,
    }
    sent = [[o["order_id"] for o in body["orders"]] for _, _, body in scripted.asked]
    assert sent == [["o-0", "o-1", "o-2", "o-3"], ["o-0", "o-1", "o-3"]]


def test_orders_the_schema_refuses_are_found_in_one_pass(scripted: Scripted) -> None:
    rows = [dict(r) for r in ROWS[:6]]
    rows[1]["pickup_lat"] = 123.0
    rows[4]["items"] = -1
    scripted.max_batch = 6
    scripted.error(422, "Expected `float` <= 90.0", field_name="orders[1].pickup_lat")
    with EtaClient(scripted.url) as client:
        frame = client.bulk_predict(rows, processes=1, progress=False).frame
    bad = frame.filter(pl.col("status") == "rejected")
    assert bad["row"].to_list() == [1, 4]
    assert [e.split(":")[0] for e in bad["error"].to_list()] == ["pickup_lat", "items"]
    assert len(scripted.asked) == 2  # the refused batch, then its 4 good orders once
    assert [o["order_id"] for o in scripted.asked[1][2]["orders"]] == ["o-0", "o-2", "o-3", "o-5"]
