"""Reading CSV records: physical line numbers, ragged rows, gzip by content, encodings."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from arrive.errors import InputFileError, MappingError
from arrive.ingest.importers.csvsource import LINE, read_csv
from arrive.ingest.importers.mapping import CsvOptions


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_lines_are_physical_and_ragged_rows_set_aside(tmp_path: Path) -> None:
    data = b'a,b\r\n1,"two\r\nlines"\r\n3\r\n\r\n4,5,6\r\n7, 8 \r\n'
    table = read_csv(_write(tmp_path / "x.csv", data), CsvOptions())
    assert table.header == ("a", "b")
    assert table.rows.get_column(LINE).to_list() == [2, 7]
    assert table.rows.get_column("src:b").to_list() == ["two\r\nlines", " 8 "]  # raw, unstripped
    assert [(r.line, r.fields) for r in table.ragged] == [(4, ["3"]), (6, ["4", "5", "6"])]
    assert table.blank_lines == 1
    assert table.records == 4


def test_gzip_is_recognised_by_content(tmp_path: Path) -> None:
    path = _write(tmp_path / "plain-name.csv", gzip.compress(b"a;b\n1;2\n"))
    table = read_csv(path, CsvOptions(delimiter=";"))
    assert table.rows.get_column("src:a").to_list() == ["1"]


def test_utf8_bom_and_other_encodings(tmp_path: Path) -> None:
    bom = read_csv(_write(tmp_path / "bom.csv", b"\xef\xbb\xbfid,x\n1,2\n"), CsvOptions())
    assert bom.header == ("id", "x")
    latin = read_csv(
        _write(tmp_path / "l.csv", "id,ville\n1,Orléans\n".encode("latin-1")),
        CsvOptions(encoding="latin-1"),
    )
    assert latin.rows.get_column("src:ville").to_list() == ["Orléans"]


def test_repeated_header_names_stay_apart(tmp_path: Path) -> None:
    table = read_csv(_write(tmp_path / "x.csv", b"a,a,b\n1,2,3\n"), CsvOptions())
    assert table.rows.columns == ["src:a", "src:a#2", "src:b", LINE]


def test_wanted_columns_are_checked_before_rows(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", b"a,b\n1,2\n")
    with pytest.raises(MappingError, match=r"column 'c' \(mapped by fields.x\).*has: 'a', 'b'"):
        read_csv(path, CsvOptions(), wanted=[("fields.x", "c")])


def test_undecodable_text_names_its_line(tmp_path: Path) -> None:
    lines = b"a,b\n" + b"1,2\n" * 5000 + b"\xff,3\n"
    with pytest.raises(InputFileError, match="line 5002: not valid utf-8 text"):
        read_csv(_write(tmp_path / "x.csv", lines), CsvOptions())


def test_progress_is_reported_in_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", b"a\n" + b"1\n" * 20_000)
    seen: list[tuple[int, int]] = []
    read_csv(path, CsvOptions(), on_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)
    assert len(seen) >= 3
