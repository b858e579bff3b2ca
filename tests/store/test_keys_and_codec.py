"""The Redis key layout and the packed form of a feature vector."""

from __future__ import annotations

import msgspec
import pytest

from arrive.store.base import FeatureValue
from arrive.store.codec import pack_row, unpack_row, unpack_rows
from arrive.store.keys import KeyLayout


def test_keys_are_versioned_and_namespaced() -> None:
    layout = KeyLayout("prod")
    assert layout.feature_key(("store", "1845")) == "prod:v1:f:store:1845"
    assert layout.feature_key(("store", "a:b")) == "prod:v1:f:store:a:b"
    assert KeyLayout().feature_key(("courier", "7")) == "arrive:v1:f:courier:7"


class Kind(str):
    pass


def test_keys_of_many_entities_are_each_entitys_key() -> None:
    layout = KeyLayout("prod")
    entities = [("store", "1845"), ("store", "a:b"), (Kind("courier"), Kind("7")), ("店", "🍕")]
    assert layout.feature_keys(entities) == [layout.feature_key(e) for e in entities]
    assert layout.feature_keys([]) == []


@pytest.mark.parametrize(
    ("entity", "match"),
    [(("", "1"), "kind ''"), (("a:b", "1"), "kind 'a:b'"), (("store", ""), "id ''")],
)
def test_many_keys_refuse_a_malformed_entity(entity: tuple[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KeyLayout().feature_keys([("store", "1"), entity])


def test_the_scan_pattern_escapes_glob_characters() -> None:
    assert KeyLayout("a*[b]").feature_pattern() == r"a\*\[b\]:v1:f:*"


@pytest.mark.parametrize(
    ("entity", "match"),
    [(("", "1"), "kind ''"), (("a:b", "1"), "kind 'a:b'"), (("store", ""), "id ''")],
)
def test_malformed_entities_have_no_key(entity: tuple[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KeyLayout().feature_key(entity)


def test_an_empty_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix"):
        KeyLayout("")


def test_packing_round_trips_as_value_time_pairs() -> None:
    row = {"a": FeatureValue(1.25, -3), "b": FeatureValue(None, 2**53), "c": FeatureValue("é", 0)}
    packed = pack_row(row)
    assert msgspec.msgpack.decode(packed) == {"a": [1.25, -3], "b": [None, 2**53], "c": ["é", 0]}
    assert unpack_row(packed) == row


@pytest.mark.parametrize(
    "data", [b"", b"\xc1", msgspec.msgpack.encode({"a": "x"}), msgspec.msgpack.encode([1])]
)
def test_foreign_bytes_do_not_unpack(data: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        unpack_row(data)


def test_many_rows_unpack_as_each_row() -> None:
    rows = [{"a": FeatureValue(1.25, -3)}, None, {"b": FeatureValue(None, 2**53)}, {}, None]
    packed = [None if row is None else pack_row(row) for row in rows]
    assert unpack_rows(packed) == rows
    assert unpack_rows([]) == []


WHOLE = pack_row({"a": FeatureValue(1.0, 0)})


@pytest.mark.parametrize(
    "foreign",
    [
        b"",  # would shift the values after it
        b"\xc0",  # nil: would read as missing
        b"\xc1",
        WHOLE[:-1],  # truncated
        WHOLE + b"\xc0",  # over-long
        WHOLE + WHOLE,
        msgspec.msgpack.encode({"a": "x"}),
    ],
)
def test_one_foreign_value_fails_many_rows(foreign: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        unpack_rows([WHOLE, foreign, None, WHOLE])


def test_a_value_not_bytes_fails_many_rows() -> None:
    with pytest.raises(TypeError):
        unpack_rows([WHOLE, "text"])
