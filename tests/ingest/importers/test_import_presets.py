"""Both presets on the real files, through the CLI: counts, values, events, quarantine."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from arrive import datadir
from arrive.cli.main import run
from arrive.schema.events import OrderCreated
from arrive.schema.frame import UTC_TIME, frame_to_events

_DONE: dict[tuple[str, Path], Path] = {}


@pytest.fixture(scope="module")
def imports_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("imports")


def _import_once(preset: str, source: Path, root: Path) -> Path:
    """Each preset is imported once per module; every test reads the same output."""
    key = (preset, source)
    if key not in _DONE:
        out = root / preset
        assert run(["import", preset, str(source), "--out", str(out), "--quiet"]) == 0
        _DONE[key] = out
    return _DONE[key]


@pytest.fixture
def food(food_delivery_csv: Path, imports_root: Path) -> Path:
    return _import_once("food-delivery", food_delivery_csv, imports_root)


@pytest.fixture
def doordash(doordash_csv: Path, imports_root: Path) -> Path:
    return _import_once("doordash", doordash_csv, imports_root)


def _summary(directory: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((directory / datadir.SUMMARY_FILE).read_bytes())
    return summary


def _quarantine(directory: Path) -> list[list[str]]:
    with (directory / datadir.QUARANTINE_FILE).open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _source_records(path: Path) -> dict[int, list[str]]:
    """Records by physical line (neither real file has a quoted newline)."""
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        return dict(enumerate(csv.reader(handle), start=1))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _row(orders: pl.DataFrame, order_id: str) -> dict[str, Any]:
    rows = orders.filter(pl.col("order_id") == order_id).to_dicts()
    assert len(rows) == 1
    return rows[0]


# -- both ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows_in", "imported"), [("food", 45_593, 43_706), ("doordash", 10_588, 10_582)]
)
def test_every_row_is_accounted_for(
    name: str, rows_in: int, imported: int, request: pytest.FixtureRequest
) -> None:
    directory: Path = request.getfixturevalue(name)
    summary = _summary(directory)
    quarantine = _quarantine(directory)[1:]
    assert summary["rows_in"] == rows_in
    assert summary["rows_imported"] == imported == datadir.read_orders(directory).height
    assert summary["rows_quarantined"] == rows_in - imported == len(quarantine)
    assert sum(summary["quarantine_by_reason"].values()) == len(quarantine)
    assert len(summary["input"]["sha256"]) == 64
    assert summary["arrive_version"]


@pytest.mark.parametrize("name", ["food", "doordash"])
def test_orders_are_canonical_sorted_and_utc(name: str, request: pytest.FixtureRequest) -> None:
    orders = datadir.read_orders(request.getfixturevalue(name))
    assert orders.columns[: len(datadir.ORDER_COLUMNS)] == list(datadir.ORDER_COLUMNS)
    assert orders.schema["created_at"] == UTC_TIME == orders.schema["delivered_at"]
    assert orders.get_column("created_at").is_sorted()
    assert orders.get_column("order_id").is_unique().all()
    assert (orders.get_column("status") == "delivered").all()
    elapsed = (orders["delivered_at"] - orders["created_at"]).dt.total_seconds()
    assert (elapsed == orders["duration_s"]).all()
    assert orders["duration_s"].min() >= 60
    assert orders["duration_s"].max() <= 21_600


@pytest.mark.parametrize("name", ["food", "doordash"])
def test_events_are_time_ordered_and_valid(name: str, request: pytest.FixtureRequest) -> None:
    directory = request.getfixturevalue(name)
    events = datadir.scan_events(directory).collect()
    summary = _summary(directory)
    assert events.get_column("event_time").is_sorted()
    assert events.get_column("event_id").is_unique().all()
    counts = dict(events.get_column("type").value_counts().iter_rows())
    assert counts == summary["events"]
    assert counts["order_created"] == counts["delivered"] == summary["rows_imported"]
    sample = events.gather_every(50)
    assert len(list(frame_to_events(sample))) == sample.height  # the schema accepts them


@pytest.mark.parametrize(
    ("name", "preset"), [("food", "food_delivery_csv"), ("doordash", "doordash_csv")]
)
def test_quarantine_keeps_the_raw_record_of_its_line(
    name: str, preset: str, request: pytest.FixtureRequest
) -> None:
    rows = _quarantine(request.getfixturevalue(name))
    source = _source_records(request.getfixturevalue(preset))
    assert rows[0] == ["line", "reason", *source[1]]
    assert [r[0] for r in rows[1:]] == sorted((r[0] for r in rows[1:]), key=int)
    for line, _, *fields in rows[1:]:
        assert fields == source[int(line)]


# -- food-delivery ---------------------------------------------------------------------------


def test_food_quarantine_reasons(food: Path) -> None:
    assert _summary(food)["quarantine_by_reason"] == {
        "created_at: missing value": 1731,
        "drop: more than 50 km from pickup": 156,
    }
    reasons = {int(r[0]): r[1] for r in _quarantine(food)[1:]}
    assert reasons[44] == "created_at: missing value"  # Time_Orderd is "NaN "
    assert 41 not in reasons  # picked 08:55, took 11 min: kept, its pickup time dropped
    assert _summary(food)["events_not_written"] == {"picked_up": 1239}


def test_food_refuses_junk_ratings_and_far_restaurants(food: Path, food_delivery_csv: Path) -> None:
    source = _source_records(food_delivery_csv)
    quarantined = {int(r[0]) for r in _quarantine(food)[1:]}
    ratings = {n for n, r in source.items() if n > 1 and r[3].strip() not in ("NaN", "")}
    high = {n for n in ratings if float(source[n][3]) > 5}
    negated = {n for n, r in source.items() if n > 1 and float(r[4]) < 0}
    assert len(high) == 53
    assert len(negated) == 431
    assert high | negated <= quarantined


def test_food_known_row(food: Path) -> None:
    row = _row(datadir.read_orders(food), "0x4607")  # line 2
    assert row["source_line"] == 2
    assert row["created_at"] == _at("2022-03-19 06:00:00")  # 11:30 in Asia/Kolkata
    assert row["duration_s"] == 24 * 60
    assert (row["store_id"], row["market_id"], row["courier_id"]) == (
        "INDORES13",
        "INDO",
        "INDORES13DEL02",
    )
    assert (row["pickup_lat"], row["pickup_lon"]) == (22.745049, 75.892471)
    assert (row["drop_lat"], row["drop_lon"]) == (22.765049, 75.912471)
    assert {k: row[k] for k in ("courier_age", "courier_rating", "weather", "traffic")} == {
        "courier_age": 37.0,
        "courier_rating": 4.9,
        "weather": "Sunny",
        "traffic": "High",
    }
    assert (row["vehicle_condition"], row["order_type"], row["vehicle"]) == (
        2,
        "Snack",
        "motorcycle",
    )
    assert (row["multiple_deliveries"], row["festival"], row["city_type"]) == (0, False, "Urban")


def test_food_restaurant_at_zero_is_unknown_not_zero(food: Path) -> None:
    orders = datadir.read_orders(food)
    assert orders.filter(pl.col("pickup_lat") == 0).height == 0
    unknown = orders.filter(pl.col("pickup_lat").is_null())
    assert unknown.height > 3000
    assert unknown.get_column("drop_lat").null_count() == 0


def test_food_pickup_after_midnight_rolls_to_the_next_day(food: Path) -> None:
    events = datadir.scan_events(food).collect()
    orders = datadir.read_orders(food)
    late = orders.filter(
        pl.col("created_at").dt.convert_time_zone("Asia/Kolkata").dt.hour() == 23,
        pl.col("created_at").dt.convert_time_zone("Asia/Kolkata").dt.minute() >= 50,
    )
    picked = events.filter(pl.col("type") == "picked_up").join(
        late.select("order_id", "created_at"), on="order_id"
    )
    assert picked.height > 0
    gap = picked["event_time"] - picked["created_at"]
    assert gap.min() >= timedelta(minutes=5)
    assert gap.max() <= timedelta(minutes=15)
    local_days = picked.select(
        (
            pl.col("event_time").dt.convert_time_zone("Asia/Kolkata").dt.date()
            - pl.col("created_at").dt.convert_time_zone("Asia/Kolkata").dt.date()
        ).dt.total_days()
    )
    assert set(local_days.to_series()) == {0, 1}  # some cross midnight, locally


def test_food_order_created_carries_attributes(food: Path) -> None:
    created = (
        datadir.scan_events(food)
        .filter(pl.col("order_id") == "0x4607", pl.col("type") == "order_created")
        .collect()
    )
    event = next(frame_to_events(created))
    assert isinstance(event, OrderCreated)
    assert event.event_id == "0x4607:order_created"
    assert event.attributes["festival"] is False
    assert event.attributes["weather"] == "Sunny"
    assert event.attributes["courier_rating"] == 4.9


# -- doordash --------------------------------------------------------------------------------


def test_doordash_quarantine_reasons_and_lines(doordash: Path) -> None:
    rows = _quarantine(doordash)[1:]
    assert [(int(r[0]), r[1]) for r in rows] == [
        (111, "delivered_at: missing value"),
        (2692, "duration_s: above the plausible maximum of 21600 s"),  # created 2014-10-19
        (4991, "outstanding_orders: negative"),
        (6036, "couriers_on_shift: negative"),
        (7672, "delivered_at: missing value"),
        (7999, "couriers_busy: negative"),
    ]


def test_doordash_known_row(doordash: Path) -> None:
    orders = datadir.read_orders(doordash)
    row = orders.filter(pl.col("source_line") == 2).to_dicts()[0]
    assert row["order_id"] == "2"  # unmapped: the line number
    assert row["created_at"] == _at("2015-02-06 22:24:17")
    assert row["delivered_at"] == _at("2015-02-06 23:27:16")
    assert row["duration_s"] == 3779
    assert (row["market_id"], row["store_id"], row["store_category"]) == ("1", "1845", "american")
    assert (row["items"], row["distinct_items"], row["subtotal"]) == (4, 4, pytest.approx(34.41))
    assert (row["min_item_price"], row["max_item_price"]) == (pytest.approx(5.57), 12.39)
    assert (row["couriers_on_shift"], row["couriers_busy"], row["outstanding_orders"]) == (
        33,
        14,
        21,
    )
    assert row["order_protocol"] == "1"
    assert row["estimated_order_place_duration_s"] == 446
    assert row["estimated_store_to_consumer_driving_duration_s"] == 861


def test_doordash_keeps_negative_item_prices(doordash: Path) -> None:
    orders = datadir.read_orders(doordash)
    assert orders.filter(pl.col("min_item_price") < 0).height == 2


def test_doordash_market_snapshots(doordash: Path) -> None:
    summary = _summary(doordash)
    events = datadir.scan_events(doordash).collect()
    snapshots = events.filter(pl.col("type") == "market_snapshot")
    assert snapshots.height == summary["events"]["market_snapshot"] == 9732
    assert summary["events_not_written"] == {"market_snapshot": 51}  # market_id is NA
    row = snapshots.filter(pl.col("order_id") == "2").to_dicts()[0]
    assert row["event_time"] == _at("2015-02-06 22:24:17")
    assert (row["market_id"], row["couriers_on_shift"], row["outstanding_orders"]) == ("1", 33, 21)
