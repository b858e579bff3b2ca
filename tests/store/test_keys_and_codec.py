"""The Redis key layout and the packed form of a feature vector."""

from __future__ import annotations

import msgspec
import pytest

from arrive.store.base import FeatureValue
from arrive.store.codec import pack_row, unpack_row
from arrive.store.keys import KeyLayout


def test_keys_are_versioned_and_namespaced() -> None:
    layout = KeyLayout("prod")
    assert layout.feature_key(("store", "1845")) == "prod:v1:f:store:1845"
    assert layout.feature_key(("store", "a:b")) == "prod:v1:f:store:a:b"
    assert KeyLayout().feature_key(("courier", "7")) == "arrive:v1:f:courier:7"


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
