"""docs/mapping.md and docs/how-to/import-csv.md: the example mapping imports the example CSV
as the text says."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from arrive import datadir
from arrive.cli.main import run

ROOT = Path(__file__).resolve().parents[3]
DOCS = (ROOT / "docs" / "mapping.md", ROOT / "docs" / "how-to" / "import-csv.md")


def _block(doc: Path, kind: str) -> str:
    match = re.search(rf"```{kind}\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)
    if match is None:
        pytest.fail(f"{doc.name} has no {kind} block")
    return match.group(1)


@pytest.fixture(params=DOCS, ids=lambda p: p.name)
def doc(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


@pytest.fixture
def imported(tmp_path: Path, doc: Path) -> Path:
    mapping = tmp_path / "parcel-express.toml"
    mapping.write_text(_block(doc, "toml"), encoding="utf-8")
    data = tmp_path / "export.csv"
    data.write_text(_block(doc, "csv"), encoding="utf-8")
    out = tmp_path / "out"
    assert run(["import", str(mapping), str(data), "--out", str(out), "--quiet"]) == 0
    return out


def test_the_documented_rows_are_quarantined(imported: Path) -> None:
    with (imported / datadir.QUARANTINE_FILE).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [(int(r[0]), r[1]) for r in rows] == [
        (4, "rating: above the maximum 5"),
        (5, "delivered_at: missing value"),
        (6, "order_id: duplicate of an earlier row"),
    ]


def test_the_midnight_crossing_and_every_transform(imported: Path) -> None:
    orders = datadir.read_orders(imported)
    first = orders.filter(pl.col("order_id") == "1001").to_dicts()[0]
    assert first["created_at"] == datetime(2024, 3, 14, 22, 50, tzinfo=UTC)
    assert first["delivered_at"] == datetime(2024, 3, 14, 23, 20, tzinfo=UTC)
    assert first["duration_s"] == 1800
    assert (first["store_id"], first["market_id"], first["subtotal"]) == ("12", "munich", 24.5)
    assert (first["pickup_lat"], first["drop_lon"]) == (48.137, 11.56)
    assert (first["couriers_on_shift"], first["couriers_busy"], first["outstanding_orders"]) == (
        12,
        7,
        9,
    )
    assert (first["weather"], first["rating"], first["priority"], first["express"]) == (
        "clear",
        4.5,
        2,
        True,
    )
    second = orders.filter(pl.col("order_id") == "1002").to_dicts()[0]
    assert (second["pickup_lat"], second["pickup_lon"], second["drop_lat"]) == (None, None, 52.52)
    assert (second["weather"], second["rating"]) == ("rain", None)


def test_every_lifecycle_event_in_order(imported: Path) -> None:
    events = datadir.scan_events(imported).collect().filter(pl.col("order_id") == "1001")
    by_type = dict(zip(events["type"], events["event_time"], strict=True))
    minute = {kind: (at.hour, at.minute) for kind, at in by_type.items()}
    assert minute == {
        "order_created": (22, 50),
        "market_snapshot": (22, 50),
        "order_confirmed": (22, 51),
        "courier_assigned": (22, 55),
        "food_ready": (22, 58),
        "picked_up": (23, 5),  # 00:05 local, the next day
        "delivered": (23, 20),
    }


def test_the_courier_pickup_example(tmp_path: Path) -> None:
    doc = DOCS[0]
    section = doc.read_text(encoding="utf-8").split("## When the pickup is the courier", 1)[1]
    mapping = tmp_path / "parcel-courier.toml"
    mapping.write_text(_block_in(section, "toml"), encoding="utf-8")
    data = tmp_path / "tasks.csv"
    data.write_text(_block_in(section, "csv"), encoding="utf-8")
    out = tmp_path / "out"
    assert run(["import", str(mapping), str(data), "--out", str(out), "--quiet"]) == 0
    orders = datadir.read_orders(out)
    assert orders.select("order_id", "pickup_lat", "pickup_lon").rows() == [
        ("T1", 52.52, 13.405),
        ("T2", None, None),
    ]
    events = datadir.scan_events(out).collect()
    created = events.filter(pl.col("type") == "order_created")
    assert created.get_column("pickup_lat").null_count() == 2
    ping = events.filter(pl.col("type") == "courier_ping").to_dicts()
    assert [(p["courier_id"], p["lat"], p["lon"], p["status"]) for p in ping] == [
        ("c-4", 52.52, 13.405, "busy")
    ]
    assert ping[0]["event_time"] == datetime(2024, 3, 14, 8, 4, tzinfo=UTC)
    summary = json.loads((out / datadir.SUMMARY_FILE).read_text(encoding="utf-8"))
    assert summary["pickup_is"] == "courier_at_accept"
    assert summary["coordinates_unknown"] == {"pickup": 1, "drop": 0}
    assert summary["events_not_written"] == {"courier_assigned": 1, "courier_ping": 1}


def _block_in(text: str, kind: str) -> str:
    match = re.search(rf"```{kind}\n(.*?)```", text, re.DOTALL)
    assert match is not None, f"no {kind} block"
    return match.group(1)
