"""Fuzzing the CSV reader: any file bytes, with any options a mapping allows, are read
or refused with one ``InputFileError`` (naming the file) or, when the header lacks a
mapped column, ``MappingError``; never another exception."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from arrive.errors import InputFileError, MappingError
from arrive.ingest.importers.csvsource import LINE, read_csv
from arrive.ingest.importers.mapping import CsvOptions

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
_options = st.builds(
    CsvOptions,
    delimiter=st.sampled_from([",", ";", "\t", "|", " "]),
    quote=st.sampled_from(['"', "'"]),
    encoding=st.sampled_from(["utf-8", "latin-1", "cp1252", "utf-16", "ascii"]),
    strip=st.booleans(),
)
_cell = st.text(alphabet=st.sampled_from(list("ab ,;\"'\t|\n\r\x00\xe9\u20ac")), max_size=6)
_tables = st.lists(st.lists(_cell, min_size=1, max_size=4), max_size=6).map(
    lambda rows: "\n".join(",".join(row) for row in rows)
)


def _reads_or_refuses(data: bytes, options: CsvOptions) -> None:
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "orders.csv"
        path.write_bytes(data)
        try:
            table = read_csv(path, options, wanted=[("fields.order_id", "id")])
        except (InputFileError, MappingError) as exc:  # MappingError: no `id` in the header
            message = str(exc)
        else:
            assert table.rows.get_column(LINE).is_sorted()
            return
    assert message.startswith(str(path))


@FUZZ
@given(st.binary(max_size=300), _options)
@example(b"\x1f\x8b garbage", CsvOptions())
@example(b"id\n\xff\xfe\n", CsvOptions())
@example(b"id\n\x00", CsvOptions(encoding="utf-16"))
def test_any_bytes_are_read_or_refused(data: bytes, options: CsvOptions) -> None:
    _reads_or_refuses(data, options)


@FUZZ
@given(_tables, _options, st.booleans())
def test_structured_garbage_is_read_or_refused(
    text: str, options: CsvOptions, compress: bool
) -> None:
    data = ("id," + text).encode(options.encoding, errors="replace")
    _reads_or_refuses(gzip.compress(data) if compress else data, options)


@FUZZ
@given(_tables, st.integers(min_value=0))
def test_truncated_gzip_is_refused(text: str, cut: int) -> None:
    data = gzip.compress(("id," + text).encode())
    _reads_or_refuses(data[: cut % len(data)], CsvOptions())
