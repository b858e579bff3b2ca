"""Value conversion and row checks, one rule at a time, through :func:`import_csv`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from arrive.clock import ManualClock
from arrive.errors import MappingError
from arrive.ingest import ImportResult, import_csv, parse_mapping

HEAD = """
name = "unit"
timezone = "Europe/Berlin"
[timestamps.created_at]
column = "at"
format = "%Y-%m-%d %H:%M"
[target]
duration = { column = "took", unit = "min" }
"""


def _import(tmp_path: Path, extra: str, rows: list[str], header: str = "at,took") -> ImportResult:
    path = tmp_path / "x.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    return import_csv(path, parse_mapping(HEAD + extra), clock=clock)


def _reasons(result: ImportResult) -> list[str]:
    return [row.reason for row in result.quarantine]


def test_dst_gap_is_unparseable_and_overlap_takes_the_earlier(tmp_path: Path) -> None:
    result = _import(tmp_path, "", ["2024-03-31 02:30,20", "2024-10-27 02:30,20"])
    assert _reasons(result) == [
        "created_at: unparseable value (expected %Y-%m-%d %H:%M)",
    ]
    assert result.orders["created_at"].to_list() == [datetime(2024, 10, 27, 0, 30, tzinfo=UTC)]


def test_time_only_end_rolls_over_midnight(tmp_path: Path) -> None:
    extra = '\nend = { time_column = "end", time_format = "%H:%M" }\nmax_s = 7200\n'
    mapping = HEAD.replace('duration = { column = "took", unit = "min" }', "") + extra
    path = tmp_path / "x.csv"
    path.write_text("at,end\n2024-05-01 23:40,00:10\n2024-05-01 12:00,11:00\n", encoding="utf-8")
    result = import_csv(path, parse_mapping(mapping))
    assert result.orders["duration_s"].to_list() == [1800]
    # 11:00 before 12:00 means the next day: 23 h, above the plausible maximum.
    assert _reasons(result) == ["duration_s: above the plausible maximum of 7200 s"]


def test_duration_units_and_patterns(tmp_path: Path) -> None:
    text = HEAD.replace(
        '{ column = "took", unit = "min" }',
        '{ column = "took", pattern = "(\\\\d+)h", unit = "h" }',
    )
    path = tmp_path / "x.csv"
    path.write_text("at,took\n2024-05-01 10:00,2h\n2024-05-01 10:00,soon\n", encoding="utf-8")
    result = import_csv(path, parse_mapping(text))
    assert result.orders["duration_s"].to_list() == [7200]
    assert _reasons(result) == ["duration_s: does not match the pattern"]


@pytest.mark.parametrize(
    ("spec", "values", "imported", "reasons"),
    [
        (
            "type = 'bool'",
            ["Yes", "n", "TRUE", "0", "-"],
            [True, False, True, False],
            ["x: not a boolean (true/false, yes/no, 1/0)"],
        ),
        ("type = 'int'", ["3", "3.0", "3.5", "1e2"], [3, 3, 100], ["x: not a whole number"]),
        ("type = 'int', scale = 0.01", ["250", "300"], [3], ["x: not a whole number"]),
        (
            "type = 'float', min = 0, max = 1",
            ["0", "1", "1.01", "-0.1", "inf"],
            [0.0, 1.0],
            ["x: above the maximum 1", "x: below the minimum 0", "x: not a number"],
        ),
        ("map = { a = 'A', gone = '' }", ["a", "b", "gone"], ["A", "b", None], []),
        (
            "strip_prefix = 'id:', pattern = '^(\\d+)$'",
            ["id:12", "12", "id:x"],
            ["12", "12"],
            ["x: does not match the pattern"],
        ),
    ],
)
def test_attribute_conversion(
    tmp_path: Path, spec: str, values: list[str], imported: list[object], reasons: list[str]
) -> None:
    extra = f"[attributes]\nx = {{ column = 'x', {spec} }}\n"
    rows = [f"2024-05-01 10:{i:02d},20,{value}" for i, value in enumerate(values)]
    result = _import(tmp_path, extra, rows, header="at,took,x")
    assert result.orders["x"].to_list() == imported
    assert _reasons(result) == reasons


def test_canonical_field_rules(tmp_path: Path) -> None:
    extra = """
[fields]
store_id = { column = "s" }
items = { column = "n" }
subtotal = { column = "p" }
"""
    rows = [
        "2024-05-01 10:00,20,s1,2,9.5",
        f"2024-05-01 10:01,20,{'s' * 257},2,9.5",
        "2024-05-01 10:02,20,s1,-1,9.5",
        "2024-05-01 10:03,20,s1,3000000000,9.5",
        "2024-05-01 10:04,20,s1,2,-0.5",
    ]
    result = _import(tmp_path, extra, rows, header="at,took,s,n,p")
    assert result.orders.select("store_id", "items", "subtotal").rows() == [("s1", 2, 9.5)]
    assert _reasons(result) == [
        "store_id: longer than 256 characters",
        "items: negative",
        "items: too large",
        "subtotal: negative",
    ]


def test_decimal_comma_and_unknown_coordinates(tmp_path: Path) -> None:
    extra = (
        "[csv]\ndelimiter = ';'\ndecimal = ','\n[coordinates]\n"
        "pickup = { lat = 'a', lon = 'o' }\nmissing = [[0.0, 0.0], [-1.0, -1.0]]\n"
    )
    rows = [
        "2024-05-01 10:00;20;52,5;13,4",
        "2024-05-01 10:01;20;-1;-1",
        "2024-05-01 10:02;20;0;0,0",
    ]
    result = _import(tmp_path, extra, rows, header="at;took;a;o")
    assert result.orders.select("pickup_lat", "pickup_lon").rows() == [
        (52.5, 13.4),
        (None, None),
        (None, None),
    ]


def test_lifecycle_outside_the_order_is_refused(tmp_path: Path) -> None:
    extra = "[timestamps.ready_at]\ncolumn = 'r'\nformat = '%Y-%m-%d %H:%M'\n"
    rows = [
        "2024-05-01 10:00,20,2024-05-01 10:05",
        "2024-05-01 10:00,20,2024-05-01 09:59",
        "2024-05-01 10:00,20,2024-05-01 10:21",
    ]
    result = _import(tmp_path, extra, rows, header="at,took,r")
    assert _reasons(result) == ["ready_at: before created_at", "ready_at: after delivered_at"]
    assert result.events.filter(pl.col("type") == "food_ready").height == 1


def test_lifecycle_outside_the_order_can_be_dropped_instead(tmp_path: Path) -> None:
    extra = (
        "[timestamps]\non_conflict = 'drop'\n"
        "[timestamps.ready_at]\ncolumn = 'r'\nformat = '%Y-%m-%d %H:%M'\n"
    )
    rows = [
        "2024-05-01 10:00,20,2024-05-01 10:05",
        "2024-05-01 10:00,20,2024-05-01 09:59",
        "2024-05-01 10:00,20,2024-05-01 10:21",
    ]
    result = _import(tmp_path, extra, rows, header="at,took,r")
    assert result.summary["rows_imported"] == 3
    assert result.events.filter(pl.col("type") == "food_ready").height == 1
    assert result.summary["events_not_written"] == {"food_ready": 2}


def test_summary_is_stamped_by_the_injected_clock(tmp_path: Path) -> None:
    result = _import(tmp_path, "", ["2024-05-01 10:00,20"])
    assert result.summary["imported_at"] == "2030-01-01T00:00:00+00:00"
    assert result.summary["created_at_min"] == "2024-05-01T08:00:00+00:00"


def test_courier_assigned_needs_a_courier(tmp_path: Path) -> None:
    extra = """
[csv]
missing = ["-"]
[fields]
courier_id = { column = "c" }
[timestamps.assigned_at]
time_column = "a"
time_format = "%H:%M"
"""
    rows = [
        "2024-05-01 10:00,20,c1,10:02",
        "2024-05-01 10:00,20,-,10:03",
        "2024-05-01 10:00,20,-,-",
    ]
    result = _import(tmp_path, extra, rows, header="at,took,c,a")
    assert result.events.filter(pl.col("type") == "courier_assigned")["courier_id"].to_list() == [
        "c1"
    ]
    # one has no courier, one has no assignment time
    assert result.summary["events_not_written"] == {"courier_assigned": 2}
    assert result.summary["rows_imported"] == 3


def test_absurd_numbers_are_refused_not_crashed_on(tmp_path: Path) -> None:
    extra = "[attributes]\nn = { column = 'n', type = 'int' }\n"
    rows = ["2024-05-01 10:00,1e300,1", "2024-05-01 10:00,20,1e300", "2024-05-01 10:00,nan,1"]
    result = _import(tmp_path, extra, rows, header="at,took,n")
    assert _reasons(result) == [
        "duration_s: above the plausible maximum of 86400 s",
        "n: not a whole number",
        "duration_s: not a number",
    ]


YEARLESS = """
name = "yearless"
timezone = "Asia/Shanghai"
[timestamps.created_at]
column = "at"
format = "%m-%d %H:%M:%S"
{year}
[target]
duration = {{ column = "took", unit = "min" }}
"""


def test_a_constant_year_completes_a_date_written_without_one(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("at,took\n02-29 10:00:00,20\n02-30 10:00:00,20\n", encoding="utf-8")
    result = import_csv(path, parse_mapping(YEARLESS.format(year="year = 2024")))
    # 10:00 in Shanghai is 02:00 UTC: no year 0001, no local-mean-time offset.
    assert result.orders["created_at"].to_list() == [datetime(2024, 2, 29, 2, 0, tzinfo=UTC)]
    assert _reasons(result) == ["created_at: unparseable value (expected %m-%d %H:%M:%S in 2024)"]


def test_the_year_can_come_from_another_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("yr,at,took\n2023,12-31 23:00:00,20\n,01-01 08:00:00,20\n", encoding="utf-8")
    result = import_csv(path, parse_mapping(YEARLESS.format(year='year_column = "yr"')))
    assert result.orders["created_at"].to_list() == [datetime(2023, 12, 31, 15, 0, tzinfo=UTC)]
    assert _reasons(result) == [
        "created_at: unparseable value (expected %m-%d %H:%M:%S, year from yr)"
    ]


def test_implausible_times_are_quarantined_with_their_bound(tmp_path: Path) -> None:
    rows = [
        "1999-12-31 12:00,20",
        "2024-05-01 12:00,20",
        "2030-01-02 23:00,20",
        "2030-01-03 01:30,20",
    ]
    result = _import(tmp_path, "", rows)  # imported at 2030-01-01 00:00 UTC
    assert result.orders.height == 2
    assert _reasons(result) == [
        "created_at: implausible, before 2000-01-01 (timestamps.earliest)",
        "created_at: implausible, on or after 2030-01-03 (timestamps.latest)",
    ]
    bounds = "[timestamps]\nearliest = 1990-01-01\nlatest = 2025-01-01\n"
    mapping = HEAD.replace("[timestamps.created_at]", bounds + "[timestamps.created_at]")
    path = tmp_path / "x.csv"
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    result = import_csv(path, parse_mapping(mapping), clock=clock)
    assert result.orders.height == 2
    assert [r.line for r in result.quarantine] == [4, 5]


def test_a_delivery_far_after_its_order_is_implausible_too(tmp_path: Path) -> None:
    extra = '\nend = { column = "end", format = "%Y-%m-%d %H:%M" }\nmax_s = 1e12\n'
    mapping = HEAD.replace('duration = { column = "took", unit = "min" }', "") + extra
    path = tmp_path / "x.csv"
    path.write_text("at,end\n2024-05-01 12:00,2224-05-01 12:00\n", encoding="utf-8")
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    result = import_csv(path, parse_mapping(mapping), clock=clock)
    assert _reasons(result) == [
        "delivered_at: implausible, on or after 2030-01-03 (timestamps.latest)"
    ]


def test_a_fix_near_a_missing_pair_imports_the_order_with_that_point_unknown(
    tmp_path: Path,
) -> None:
    extra = (
        "[coordinates]\nmax_trip_km = 50\n"
        "pickup = { lat = 'plat', lon = 'plon', missing = [[0.0, 0.0]],"
        " missing_within_deg = 0.01 }\n"
        "drop = { lat = 'dlat', lon = 'dlon' }\n"
    )
    rows = [
        "2024-05-01 10:00,20,22.745,75.892,22.765,75.912",
        "2024-05-01 10:01,20,-8e-05,-2e-05,22.765,75.912",  # GPS noise around (0, 0)
        "2024-05-01 10:02,20,0.02,0.0,22.765,75.912",  # not within 0.01°: a real, far fix
    ]
    result = _import(tmp_path, extra, rows, header="at,took,plat,plon,dlat,dlon")
    assert result.orders.select("pickup_lat", "pickup_lon", "drop_lat").rows() == [
        (22.745, 75.892, 22.765),
        (None, None, 22.765),
    ]
    assert _reasons(result) == ["drop: more than 50 km from pickup"]
    assert result.summary["coordinates_unknown"] == {"pickup": 1, "drop": 0}
    created = result.events.filter(pl.col("type") == "order_created")
    assert created.get_column("pickup_lat").to_list() == [22.745, None]


def test_a_tolerance_outside_its_range_is_refused() -> None:
    extra = "[coordinates]\ndrop = { lat = 'a', lon = 'o', missing_within_deg = -0.1 }\n"
    with pytest.raises(MappingError, match=r"coordinates\.drop\.missing_within_deg: must be"):
        parse_mapping(HEAD + extra)
