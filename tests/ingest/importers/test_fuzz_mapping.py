"""Fuzzing the mapping-file parser: any text (or file bytes) is a mapping or one
``MappingError`` naming the line or key, never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from arrive.errors import MappingError
from arrive.ingest.importers.mapping import Mapping, load_mapping, parse_mapping

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
_KEYS = (
    "column", "format", "pattern", "map", "scale", "strip_prefix", "unit", "date_column",
    "date_format", "time_column", "time_format", "end", "duration", "min_s", "max_s",
    "delimiter", "quote", "encoding", "missing", "strip", "decimal", "on_conflict",
)  # fmt: skip
_SECTIONS = ("csv", "fields", "timestamps", "target", "coordinates", "market", "attributes")
_scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["utf-8", "latin-1", "\x00", "Europe/Berlin", "../etc", "(", "%Y-%m-%d"]),
)
_leaf = st.dictionaries(st.sampled_from(_KEYS), _scalar, max_size=4)
_section = st.dictionaries(
    st.sampled_from([*_KEYS, "order_id", "created_at", "store_id", "items", "pickup"]),
    st.one_of(_scalar, _leaf, st.dictionaries(st.sampled_from(["lat", "lon"]), _leaf)),
    max_size=4,
)
_documents = st.fixed_dictionaries(
    {},
    optional={
        "name": _scalar,
        "timezone": _scalar,
        "local_timezone": _scalar,
        **dict.fromkeys(_SECTIONS, _section),
    },
)


def _toml(value: Any) -> str:
    """A TOML inline value (strings escaped as TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    text = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in value)
    return f'"{text}"'


def _parses_or_refuses(text: str) -> None:
    try:
        mapping = parse_mapping(text)
    except MappingError as exc:
        message = str(exc)
    else:
        assert isinstance(mapping, Mapping)
        return
    assert message.startswith("mapping: ")


@FUZZ
@given(st.text(max_size=300))
@example('name = "x"\n[timestamps.created_at]\ncolumn = "t"\nformat = "%"')
def test_any_text_is_a_mapping_or_a_mapping_error(text: str) -> None:
    _parses_or_refuses(text)


@FUZZ
@given(_documents)
def test_structured_garbage_is_a_mapping_or_a_mapping_error(document: dict[str, Any]) -> None:
    _parses_or_refuses("\n".join(f"{key} = {_toml(value)}" for key, value in document.items()))


@FUZZ
@given(st.binary(max_size=200))
@example(b'name = "\xff"')
def test_any_file_bytes_are_a_mapping_or_a_mapping_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "mapping.toml"
        path.write_bytes(data)
        try:
            load_mapping(path)
        except MappingError as exc:
            message = str(exc)
        else:
            return
    assert message.startswith(str(path))
