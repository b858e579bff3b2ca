"""Whole-file errors through the CLI: exit 2, one line naming what and where, no
traceback, and nothing left in the output location."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from arrive.cli.main import run

MAPPING = """
name = "tiny"
[fields]
order_id = { column = "id" }
[timestamps.created_at]
column = "at"
format = "%Y-%m-%d %H:%M:%S"
[target]
duration = { column = "min", unit = "min" }
"""
CSV = "id,at,min\n1,2024-01-01 10:00:00,20\n"

Setup = Callable[[Path], list[str]]


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _with_mapping(mapping: str, data: str | bytes = CSV, name: str = "in.csv") -> Setup:
    def setup(tmp: Path) -> list[str]:
        return [str(_write(tmp / "m.toml", mapping)), str(_write(tmp / name, data))]

    return setup


def _preset(source: str, data: str | bytes | None = CSV) -> Setup:
    def setup(tmp: Path) -> list[str]:
        path = tmp / "in.csv"
        if data is not None:
            _write(path, data)
        return [source, str(path)]

    return setup


def _directory_input(tmp: Path) -> list[str]:
    (tmp / "adir").mkdir()
    return [str(_write(tmp / "m.toml", MAPPING)), str(tmp / "adir")]


_TRUNCATED = gzip.compress(CSV.encode() * 50)[:40]

CASES = {
    "missing input": (_preset("doordash", None), "in.csv: no such file"),
    "input is a directory": (_directory_input, "adir: is a directory"),
    "not gzip inside": (_with_mapping(MAPPING, b"\x1f\x8bnot really gzip"), "corrupt gzip"),
    "truncated gzip": (_with_mapping(MAPPING, _TRUNCATED), "corrupt gzip"),
    "undecodable": (
        _with_mapping(MAPPING, b"id,at,min\n1,2024-01-01 10:00:00,20\n\xff,x,1\n"),
        "line 3: not valid utf-8 text",
    ),
    "empty file": (_with_mapping(MAPPING, ""), "no header line"),
    "header lacks a column": (
        _with_mapping(MAPPING, "id,when,min\n1,2024-01-01 10:00:00,20\n"),
        "column 'at' (mapped by timestamps.created_at.column) is not in the header; "
        "the header has: 'id', 'when', 'min'",
    ),
    "column twice in header": (
        _with_mapping(MAPPING, "id,at,at,min\n1,x,y,20\n"),
        "column 'at' (mapped by timestamps.created_at.column) appears 2 times",
    ),
    "unknown preset": (_preset("uber-eats"), "unknown preset 'uber-eats' (presets: doordash"),
    "mapping file missing": (
        lambda tmp: [str(tmp / "nope.toml"), str(_write(tmp / "in.csv", CSV))],
        "nope.toml: mapping file not found",
    ),
    "malformed TOML": (_with_mapping('name = "x"\n[fields\n'), "not valid TOML"),
    "unknown key": (
        _with_mapping(MAPPING + '[attributes]\nrating = { colum = "r" }\n'),
        "attributes.rating.colum: unknown key",
    ),
    "wrong type": (
        _with_mapping(MAPPING + "[csv]\ndelimiter = 5\n"),
        "csv.delimiter: Expected `str`",
    ),
    "both targets": (
        _with_mapping(
            MAPPING.replace("[target]", '[target]\nend = { column = "at", format = "%F" }')
        ),
        "target: give exactly one of end or duration",
    ),
    "bad regex": (
        _with_mapping(MAPPING.replace('"id" }', '"id", pattern = "(?<=x)y" }')),
        "fields.order_id.pattern: not a valid regular expression",
    ),
    "unknown timezone": (
        _with_mapping('timezone = "Mars/Olympus"\n' + MAPPING),
        "timezone: unknown",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_whole_file_error(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup, expected = CASES[case]
    args = setup(tmp_path)
    out = tmp_path / "out"
    code = run(["import", *args, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_malformed_toml_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mapping = _write(tmp_path / "m.toml", 'name = "x"\n\n[fields\n')
    code = run(
        [
            "import",
            str(mapping),
            str(_write(tmp_path / "in.csv", CSV)),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "line 3" in capsys.readouterr().err


def test_existing_output_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mapping, data = _with_mapping(MAPPING)(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    assert run(["import", mapping, data, "--out", str(out)]) == 2
    assert "use --force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert run(["import", mapping, data, "--out", str(out), "--force", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "events",
        "import_summary.json",
        "orders.parquet",
        "quarantine.csv",
    ]


def test_summary_table_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mapping, data = _with_mapping(MAPPING)(tmp_path)
    assert run(["import", mapping, data, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "rows in" in printed
    assert "imported" in printed
    assert "order_created 1" in printed


def test_reading_progress_counts_bytes_not_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping, data = _with_mapping(MAPPING, CSV + "2,2024-01-01 11:00:00,25\n" * 300)(tmp_path)
    assert run(["import", mapping, data, "--out", str(tmp_path / "out")]) == 0
    size = Path(data).stat().st_size
    reading = [line for line in capsys.readouterr().err.splitlines() if "reading" in line]
    assert reading, "no reading progress shown"
    assert "reading the file" in reading[-1]
    assert f"{size / 1000:.1f}/{size / 1000:.1f} kB" in reading[-1]


def _one_error_line(captured: pytest.CaptureResult[str]) -> str:
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_an_import_that_keeps_no_row_exits_2_and_leaves_only_the_quarantine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "1,yesterday,20\n2,today,20\n3,2024-01-01 10:00:00,-5\n4,soon,20\n"
    mapping, data = _with_mapping(MAPPING, "id,at,min\n" + rows)(tmp_path)
    out = tmp_path / "out"
    assert run(["import", mapping, data, "--out", str(out), "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr())
    assert line == (
        "error: nothing imported: all 4 rows quarantined "
        "(created_at: unparseable value (expected %Y-%m-%d %H:%M:%S) (3 rows); "
        f"duration_s: negative (1 rows)); see {out / 'quarantine.csv'}"
    )
    assert [p.name for p in out.iterdir()] == ["quarantine.csv"]
    assert len((out / "quarantine.csv").read_text(encoding="utf-8").splitlines()) == 5

    # Training on what is left says why, in one line, instead of a Polars traceback.
    code = run(["train", str(out), "--out", str(tmp_path / "run"), "--no-register", "--quiet"])
    assert code == 2
    line = _one_error_line(capsys.readouterr())
    assert "the import refused every row" in line
    assert str(out / "quarantine.csv") in line


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ((), "empty, not an Arrive data directory"),
        (("notes.txt",), "not an Arrive data directory (no orders.parquet)"),
        (("orders.parquet",), "events: no event log here"),
    ],
)
def test_train_refuses_a_directory_that_is_not_data(
    files: tuple[str, ...], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes(b"")
    code = run(["train", str(folder), "--out", str(tmp_path / "run"), "--no-register", "--quiet"])
    assert code == 2
    line = _one_error_line(capsys.readouterr())
    assert expected in line
    assert "arrive import" in line
