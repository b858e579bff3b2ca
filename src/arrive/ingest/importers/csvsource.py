"""Reading a delimited text file into string columns, keeping physical line numbers.

Python's :mod:`csv` reader does the splitting: it survives quoted newlines and
ragged rows and tells where each record ends, so every row keeps the physical
line it starts on (the header is line 1). Rows with the wrong number of fields
are set aside, not guessed at. Gzip is recognised by its magic bytes, whatever
the file is called. Parsing values is left to :mod:`.transform`.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, NamedTuple, Protocol, cast

import polars as pl

from arrive.errors import InputFileError, MappingError
from arrive.ingest.importers.mapping import CsvOptions

#: Prefix of the raw string columns in :attr:`CsvTable.rows` (``src:<header name>``).
SOURCE_PREFIX: Final = "src:"
#: Column of :attr:`CsvTable.rows` holding the physical line a record starts on.
LINE: Final = "src#line"

_GZIP_MAGIC: Final = b"\x1f\x8b"
_REPORT_EVERY: Final = 8192

#: Called with (bytes read, total bytes) of the file on disk while reading.
ReadProgress = Callable[[int, int], None]


class _Reader(Protocol):
    """What :func:`csv.reader` returns."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


class RaggedRow(NamedTuple):
    """A record whose field count differs from the header's."""

    line: int
    fields: list[str]


@dataclass(frozen=True)
class CsvTable:
    """A file's records as string columns.

    Attributes:
        header: the header fields as written (stripped when the options strip).
        rows: records with as many fields as the header: one String column per
            header field, named ``src:<name>`` (a repeated name gets ``#2``,
            ``#3``…), plus :data:`LINE`.
        ragged: records with another field count, in file order.
        blank_lines: empty lines skipped (they hold no record).
    """

    header: tuple[str, ...]
    rows: pl.DataFrame
    ragged: tuple[RaggedRow, ...]
    blank_lines: int

    @property
    def records(self) -> int:
        """Records read, header and blank lines excluded."""
        return self.rows.height + len(self.ragged)


def read_csv(
    path: Path,
    options: CsvOptions,
    *,
    wanted: Sequence[tuple[str, str]] = (),
    on_progress: ReadProgress | None = None,
) -> CsvTable:
    """Read ``path`` (plain or gzip) with ``options``.

    Args:
        wanted: ``(mapping key path, column name)`` pairs the header must have,
            checked before any record is read.
        on_progress: called now and then with (bytes read, file size).

    Raises:
        InputFileError: missing or unreadable file, corrupt gzip, undecodable
            text or a broken record (names the line), or no header line.
        MappingError: a wanted column is absent from the header (the message
            lists the header) or appears in it more than once.
    """
    path = Path(path)
    try:
        with _open_binary(path) as raw, _text(raw, options.encoding) as text:
            reader = csv.reader(text, delimiter=options.delimiter, quotechar=options.quote)
            report = _reporter(raw, path, on_progress)
            return _read(reader, _Context(path, options, wanted, report))
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputFileError(f"{path}: corrupt gzip data ({exc})") from exc
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        line = _undecodable_line(path, options.encoding)
        raise InputFileError(f"{path}: line {line}: not valid {exc.encoding} text") from exc
    except UnicodeError as exc:  # e.g. UTF-16 without a byte-order mark
        raise InputFileError(f"{path}: not valid {options.encoding} text ({exc})") from exc


def _check_header(header: Sequence[str], wanted: Sequence[tuple[str, str]], path: Path) -> None:
    for key, column in wanted:
        count = header.count(column)
        if count == 0:
            listed = ", ".join(repr(name) for name in header)
            raise MappingError(
                f"{path}: column {column!r} (mapped by {key}) is not in the header; "
                f"the header has: {listed}"
            )
        if count > 1:
            raise MappingError(f"{path}: column {column!r} (mapped by {key}) appears {count} times")


@contextlib.contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise InputFileError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputFileError(f"{path}: is a directory, not a file") from exc
    except OSError as exc:
        raise InputFileError(f"{path}: cannot open ({exc.strerror or exc})") from exc
    with handle:
        yield handle


@contextlib.contextmanager
def _binary(raw: IO[bytes]) -> Iterator[IO[bytes]]:
    """``raw`` itself, or its decompressed content when it starts with the gzip magic."""
    magic = raw.read(2)
    raw.seek(0)
    if magic != _GZIP_MAGIC:
        yield raw
        return
    with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
        yield cast(IO[bytes], unzipped)


@contextlib.contextmanager
def _text(raw: IO[bytes], encoding: str) -> Iterator[IO[str]]:
    """Text over ``raw``, decompressing when it starts with the gzip magic."""
    # A UTF-8 byte-order mark would otherwise stick to the first header name.
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    with _binary(raw) as binary, io.TextIOWrapper(binary, encoding=encoding, newline="") as text:
        yield text


def _reporter(raw: IO[bytes], path: Path, on_progress: ReadProgress | None) -> Callable[[], None]:
    total = path.stat().st_size

    def report() -> None:
        if on_progress is not None:
            on_progress(raw.tell(), total)

    return report


class _Context(NamedTuple):
    path: Path
    options: CsvOptions
    wanted: Sequence[tuple[str, str]]
    report: Callable[[], None]


def _read(reader: _Reader, context: _Context) -> CsvTable:
    try:
        return _records(reader, context)
    except csv.Error as exc:
        raise InputFileError(f"{context.path}: line {reader.line_num + 1}: {exc}") from exc


def _records(reader: _Reader, context: _Context) -> CsvTable:
    header = next(reader, None)
    if not header:
        raise InputFileError(f"{context.path}: no header line (the file is empty or starts blank)")
    if context.options.strip:
        header = [name.strip() for name in header]
    _check_header(header, context.wanted, context.path)
    good: list[list[str]] = []
    lines: list[int] = []
    ragged: list[RaggedRow] = []
    blank = 0
    last = reader.line_num
    for fields in reader:
        start, last = last + 1, reader.line_num
        if not fields:
            blank += 1
        elif len(fields) != len(header):
            ragged.append(RaggedRow(start, fields))
        else:
            good.append(fields)
            lines.append(start)
            if len(lines) % _REPORT_EVERY == 0:
                context.report()
    context.report()
    return CsvTable(tuple(header), _frame(header, good, lines), tuple(ragged), blank)


def _undecodable_line(path: Path, encoding: str) -> int:
    """The first physical line that does not decode (the reader decodes ahead in chunks)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with _open_binary(path) as raw, _binary(raw) as binary:
        for number, line in enumerate(binary, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError:
                return number
    return 1


def _frame(header: list[str], rows: list[list[str]], lines: list[int]) -> pl.DataFrame:
    schema = {SOURCE_PREFIX + name: pl.String() for name in _unique_names(header)}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.with_columns(pl.Series(LINE, lines, dtype=pl.Int64))


def _unique_names(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return names
