"""The mapping format: presets, decoding, and the errors a bad mapping earns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from arrive.errors import MappingError
from arrive.ingest import load_mapping, parse_mapping, preset_names
from arrive.ingest.importers.mapping import Mapping

DOC = Path(__file__).resolve().parents[3] / "docs" / "mapping.md"

BASE = """
name = "t"
[timestamps.created_at]
column = "at"
format = "%Y-%m-%d"
[target]
duration = { column = "d" }
"""


def _doc_block(kind: str) -> str:
    match = re.search(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    if match is None:
        pytest.fail(f"docs/mapping.md has no {kind} block")
    return match.group(1)


def test_presets_are_mapping_files() -> None:
    assert preset_names() == ["doordash", "food-delivery"]
    for name in preset_names():
        mapping = load_mapping(name)
        assert isinstance(mapping, Mapping)
        assert mapping.name == name


def test_a_path_is_a_mapping_file(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(BASE, encoding="utf-8")
    assert load_mapping(tmp_path / "mine.toml").name == "t"
    assert load_mapping(str(tmp_path / "mine.toml")).name == "t"


def test_defaults() -> None:
    mapping = parse_mapping(BASE)
    assert mapping.timezone == "UTC"
    assert mapping.csv.delimiter == ","
    assert mapping.csv.missing == ("", "NA", "NaN")
    assert mapping.target.duration is not None
    assert mapping.target.duration.unit == "s"
    assert mapping.attributes == {}


def test_source_columns_name_their_key_paths() -> None:
    mapping = parse_mapping(BASE + '[attributes]\nx = { column = "cx" }\n')
    assert list(mapping.source_columns()) == [
        ("timestamps.created_at.column", "at"),
        ("target.duration", "d"),
        ("attributes.x", "cx"),
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[csv]\nseparator = ';'\n", "csv.separator: unknown key"),
        ("[fields]\nstore_id = { colum = 'x' }\n", "fields.store_id.colum: unknown key"),
        (
            "[attributes.speed]\ntype = 'float'\n",
            "attributes.speed.column: required key is missing",
        ),
        ("[attributes]\nspeed = { column = 'x', type = 'double' }\n", "attributes.speed.type"),
        ("[csv]\ndelimiter = ';;'\n", "csv.delimiter: must be exactly one character"),
        ("[csv]\nencoding = 'klingon'\n", "csv.encoding: unknown encoding"),
        ("[fields]\nstore_id = { column = 'x', pattern = 'abc' }\n", "needs a capture group"),
        ("[fields]\nstore_id = { column = 'x', scale = 2.0 }\n", "scale: applies to numbers only"),
        ("[attributes]\nx = { column = 'x', min = 1 }\n", "min and max apply to int and float"),
        (
            "[attributes]\nx = { column = 'x', type = 'int', min = 5, max = 1 }\n",
            "min is above max",
        ),
        ("[attributes]\nduration_s = { column = 'x' }\n", "name is taken by a canonical column"),
        ("[attributes]\nBad-Name = { column = 'x' }\n", "name must be lower_snake_case"),
        ("[coordinates]\nmax_trip_km = 0\n", "coordinates.max_trip_km: must be positive"),
        (
            "[timestamps.ready_at]\ntime_column = 'r'\n",
            "timestamps.ready_at: needs column + format, or time_column + time_format",
        ),
        (
            "[timestamps.ready_at]\ncolumn = 'r'\ntime_column = 'r'\nformat = '%H'\n",
            "give either column or time_column, not both",
        ),
        (
            "[timestamps.ready_at]\ntime_column = 'r'\ntime_format = '%H%z'\n",
            "time_format: %z needs a single column",
        ),
    ],
)
def test_bad_mapping_names_the_key(extra: str, message: str) -> None:
    with pytest.raises(MappingError, match=re.escape(message)):
        parse_mapping(BASE + extra, origin="m.toml")


@pytest.mark.parametrize(
    ("created_at", "message"),
    [
        (
            'column = "at"\nformat = "%m-%d %H:%M:%S"',
            "timestamps.created_at.format: '%m-%d %H:%M:%S' has no year (%Y or %y): set year",
        ),
        (
            'column = "at"\nformat = "2022-%m-%d %H:%M:%S"',
            "timestamps.created_at.format: '2022-%m-%d %H:%M:%S' writes the year 2022 as text",
        ),
        (
            'date_column = "d"\ndate_format = "%d.%m."\ntime_column = "t"\ntime_format = "%H:%M"',
            "timestamps.created_at.date_format: '%d.%m.' has no year",
        ),
        (
            'column = "at"\nformat = "%Y-%m-%d"\nyear = 2022',
            "timestamps.created_at.year: only for a format without a year",
        ),
        (
            'column = "at"\nformat = "%m-%d"\nyear = 2022\nyear_column = "y"',
            "timestamps.created_at: give either year or year_column, not both",
        ),
        (
            'column = "at"\nformat = "%m-%d"\nyear = 22',
            "timestamps.created_at.year: must have four digits",
        ),
    ],
)
def test_a_date_without_its_year_is_refused_at_load_time(created_at: str, message: str) -> None:
    text = BASE.replace('column = "at"\nformat = "%Y-%m-%d"', created_at)
    with pytest.raises(MappingError, match=re.escape(message)):
        parse_mapping(text)


def test_a_year_for_a_time_of_day_and_inverted_bounds_are_refused() -> None:
    ready = '[timestamps.ready_at]\ntime_column = "r"\ntime_format = "%H:%M"\nyear = 2022\n'
    with pytest.raises(MappingError, match="year and year_column go with a date"):
        parse_mapping(BASE + ready)
    bounds = BASE.replace(
        "[timestamps.created_at]",
        "[timestamps]\nearliest = 2024-01-01\nlatest = 2023-01-01\n[timestamps.created_at]",
    )
    with pytest.raises(MappingError, match=r"timestamps\.latest: must come after"):
        parse_mapping(bounds)


def test_created_at_needs_a_date() -> None:
    text = BASE.replace(
        'column = "at"\nformat = "%Y-%m-%d"', 'time_column = "t"\ntime_format = "%H:%M"'
    )
    with pytest.raises(MappingError, match=r"timestamps\.created_at: needs a date"):
        parse_mapping(text)


def test_target_needs_a_plausible_range() -> None:
    with pytest.raises(MappingError, match="target: needs 0 <= min_s < max_s"):
        parse_mapping(BASE + "min_s = 600\nmax_s = 60\n")  # still inside [target]


def test_missing_required_section() -> None:
    with pytest.raises(MappingError, match="target: required key is missing"):
        parse_mapping(BASE.split("[target]", maxsplit=1)[0])


def test_the_documented_example_parses_with_every_option() -> None:
    mapping = parse_mapping(_doc_block("toml"), origin="docs/mapping.md")
    assert mapping.name == "parcel-express"
    assert mapping.csv.delimiter == ";"
    assert mapping.csv.decimal == ","
    for name in ("confirmed_at", "ready_at", "assigned_at", "picked_up_at"):
        assert getattr(mapping.timestamps, name) is not None
    for section in (mapping.fields, mapping.market):
        assert all(getattr(section, key) is not None for key in section.__struct_fields__)
    assert mapping.coordinates.missing == ((0.0, 0.0),)
    assert {a.type for a in mapping.attributes.values()} == {"str", "float", "int", "bool"}


def test_a_courier_pickup_needs_its_position_accept_time_and_courier() -> None:
    text = BASE + '[coordinates]\npickup_is = "courier_at_accept"\n'
    with pytest.raises(MappingError) as refused:
        parse_mapping(text)
    assert str(refused.value) == (
        "mapping: coordinates.pickup_is: courier_at_accept needs coordinates.pickup"
    )
    complete = BASE.replace(
        "[target]",
        '[fields]\ncourier_id = { column = "c" }\n'
        '[timestamps.assigned_at]\ncolumn = "acc"\nformat = "%Y-%m-%d"\n[target]',
    )
    complete += (
        '[coordinates]\npickup_is = "courier_at_accept"\npickup = { lat = "a", lon = "o" }\n'
    )
    assert parse_mapping(complete).coordinates.pickup_is == "courier_at_accept"
