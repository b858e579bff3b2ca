"""A third CSV dialect, imported through a mapping file alone (no code for it)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from arrive import datadir
from arrive.cli.main import run

MAPPING = """
name = "milano-bikes"
timezone = "Europe/Rome"

[csv]
delimiter = ";"
missing = ["?"]

[fields]
order_id = { column = "id" }
store_id = { column = "branch" }
subtotal = { column = "basket" }

[timestamps.created_at]
column = "placed"
format = "%Y-%m-%dT%H:%M:%S%z"

[target]
duration = { column = "took_s", unit = "s" }
min_s = 60
max_s = 7200

[coordinates]
pickup = { lat = "lat_from", lon = "lon_from" }
drop = { lat = "lat_to", lon = "lon_to" }
max_trip_km = 50

[attributes]
vip = { column = "vip", type = "bool" }
"""

# Line numbers are physical lines: record "K7" spans lines 8-9, a blank line is line 11.
CSV = """\
id;placed;took_s;branch;lat_from;lon_from;lat_to;lon_to;basket;vip
K1;2024-06-01T10:00:00+02:00;1500;b-1;45.46;9.19;45.48;9.21;12.50;true
K2;2024-06-01T09:30:00Z;900;b-2;?;?;45.48;9.21;?;false
K3;2024-06-01 10:00;600;b-1;45.46;9.19;45.48;9.21;3.00;false
K4;2024-06-01T11:00:00+02:00;-60;b-1;45.46;9.19;45.48;9.21;3.00;false
K5;2024-06-01T11:00:00+02:00;?;b-1;45.46;9.19;45.48;9.21;3.00;false
K6;2024-06-01T12:00:00+02:00;1200;b-1;95.0;9.19;45.48;9.21;3.00;false
K7;2024-06-01T12:30:00+02:00;1200;"b-3
annex";45.46;9.19;45.48;9.21;3.00;maybe
K1;2024-06-01T13:00:00+02:00;1200;b-1;45.46;9.19;45.48;9.21;3.00;false

K9;2024-06-01T13:00:00+02:00;1200
K10;2024-06-01T23:30:00-04:00;3600;b-2;45.46;9.19;45.48;9.21;7;false
K11;2024-06-01T14:00:00+02:00;3600;b-2;45.46;9.19;46.50;9.21;5.00;false
K12;2024-06-01T14:00:00+02:00;abc;b-2;45.46;9.19;45.48;9.21;5.00;false
K13;2024-06-01T14:00:00+02:00;172800;b-2;45.46;9.19;45.48;9.21;5.00;false
K14;2024-06-01T15:00:00+02:00;1800;b-2;45.46;9.19;45.48;;5.00;no
"""

EXPECTED_QUARANTINE = [
    (4, "created_at: unparseable value (expected %Y-%m-%dT%H:%M:%S%z)"),
    (5, "duration_s: negative"),
    (6, "duration_s: missing value"),
    (7, "pickup_lat: outside -90..90"),
    (8, "vip: not a boolean (true/false, yes/no, 1/0)"),
    (10, "order_id: duplicate of an earlier row"),
    (12, "fields: 3 found, the header has 10"),
    (14, "drop: more than 50 km from pickup"),
    (15, "duration_s: not a number"),
    (16, "duration_s: above the plausible maximum of 7200 s"),
    (17, "drop_lon: missing while drop_lat is set"),
]


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    (tmp_path / "bikes.toml").write_text(MAPPING, encoding="utf-8")
    (tmp_path / "orders.csv").write_text(CSV, encoding="utf-8")
    out = tmp_path / "out"
    code = run(
        [
            "import",
            str(tmp_path / "bikes.toml"),
            str(tmp_path / "orders.csv"),
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    return out


def _summary(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((out / datadir.SUMMARY_FILE).read_bytes())
    return result


def test_counts_add_up_and_blank_lines_are_counted_apart(imported: Path) -> None:
    summary = _summary(imported)
    assert summary["rows_in"] == 14
    assert summary["rows_imported"] == 3
    assert summary["rows_quarantined"] == 11
    assert summary["blank_lines"] == 1
    assert summary["mapping"] == "milano-bikes"
    assert summary["source"].endswith("bikes.toml")


def test_quarantine_names_line_and_field(imported: Path) -> None:
    with (imported / datadir.QUARANTINE_FILE).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["line", "reason", "id"]
    assert [(int(r[0]), r[1]) for r in rows[1:]] == EXPECTED_QUARANTINE
    k7 = next(r for r in rows if r[2] == "K7")
    assert k7[5] == "b-3\nannex"  # the raw field, newline kept
    ragged = next(r for r in rows if r[2] == "K9")
    assert ragged[2:] == ["K9", "2024-06-01T13:00:00+02:00", "1200"]


def test_offsets_become_utc(imported: Path) -> None:
    orders = datadir.read_orders(imported)
    assert orders["order_id"].to_list() == ["K1", "K2", "K10"]  # by created_at (UTC)
    created = dict(zip(orders["order_id"], orders["created_at"], strict=True))
    assert created["K1"] == datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
    assert created["K2"] == datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
    assert created["K10"] == datetime(2024, 6, 2, 3, 30, tzinfo=UTC)


def test_values_and_missing_spelling(imported: Path) -> None:
    orders = datadir.read_orders(imported).sort("order_id")
    k1, k10, k2 = orders.to_dicts()
    assert k1["duration_s"] == 1500
    assert k1["delivered_at"] == datetime(2024, 6, 1, 8, 25, tzinfo=UTC)
    assert (k1["subtotal"], k1["vip"], k1["store_id"]) == (12.5, True, "b-1")
    assert (k2["pickup_lat"], k2["subtotal"], k2["vip"]) == (None, None, False)
    assert (k10["source_line"], k10["subtotal"], k10["duration_s"]) == (13, 7.0, 3600)


def test_unmapped_order_id_is_the_line_number(tmp_path: Path) -> None:
    mapping = MAPPING.replace('order_id = { column = "id" }\n', "")
    (tmp_path / "m.toml").write_text(mapping, encoding="utf-8")
    (tmp_path / "x.csv").write_text(CSV, encoding="utf-8")
    out = tmp_path / "out"
    assert (
        run(["import", str(tmp_path / "m.toml"), str(tmp_path / "x.csv"), "--out", str(out), "-q"])
        == 0
    )
    orders = datadir.read_orders(out)
    # Without ids, the second K1 (line 10) is no duplicate.
    assert sorted(orders["order_id"].to_list(), key=int) == ["2", "3", "10", "13"]
    assert (orders["order_id"] == orders["source_line"].cast(pl.String)).all()
