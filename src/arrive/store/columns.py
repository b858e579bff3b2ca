"""Stored features of many entities, column by column: what a batch read decodes into.

``get_columns(keys, fields)`` (every backend, :class:`~arrive.store.base.OnlineStore`)
reads the same entities as ``get_many(keys)`` and returns, per entity kind asked in
``fields``, a :class:`Block`: the features asked of that kind for every key of that
kind, values and event times in NumPy arrays. A caller that wants a few known
features of many entities (the service's batch path: a model's feature matrix) then
gathers whole columns instead of looking up values entity by entity, and a Redis
backend decodes each kind's packed rows in one call, straight into the features asked
(the others are skipped, not built): :class:`ColumnDecoder`.

:func:`columns_from_rows` builds the same columns from ``get_many``'s rows; backends
without a faster way (the in-process store, wrappers) use it, and the contract suite
checks that every backend's ``get_columns`` equals it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, Final, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec.structs import astuple

from arrive.store.base import EntityKey, FeatureRow

ABSENT_US: Final = -(2**62)
"""The event time of a feature with nothing stored (outside every valid event time)."""
Fields = Mapping[str, Sequence[str]]
"""Entity kind → the features asked of entities of that kind."""
_ABSENT_CELL: Final = (None, ABSENT_US)
_flat = chain.from_iterable


class Block(NamedTuple):
    """The features asked of one entity kind, for each key of that kind in a read.

    Attributes:
        names: the features, in the order asked.
        values: shape ``(rows, len(names))``: float64 when every value is a number or
            None (NaN for None or nothing stored); otherwise an object array of the
            values themselves (None for None or nothing stored).
        times: int64 event times in µs, :data:`ABSENT_US` where nothing is stored.
    """

    names: tuple[str, ...]
    values: npt.NDArray[Any]
    times: npt.NDArray[np.int64]

    @property
    def numeric(self) -> bool:
        """True when :attr:`values` is float64."""
        return self.values.dtype == np.float64


class FeatureColumns(NamedTuple):
    """A columnar read (module docstring).

    Attributes:
        blocks: per kind asked, its :class:`Block` (one row per key of that kind, in the
            order of the keys; a key read twice has two rows).
        at: per key, its row in its kind's block (-1 for a kind not asked).
    """

    blocks: dict[str, Block]
    at: list[int]


def kinds(keys: Sequence[EntityKey], fields: Fields) -> tuple[dict[str, list[int]], list[int]]:
    """Per kind asked, the positions of its keys in ``keys``; and per key its row in its
    kind's block (-1 for a kind not asked)."""
    positions: dict[str, list[int]] = {kind: [] for kind in fields}
    at = []
    for i, (kind, _) in enumerate(keys):
        rows = positions.get(kind)
        if rows is None:
            at.append(-1)
        else:
            at.append(len(rows))
            rows.append(i)
    return positions, at


def columns_from_rows(
    keys: Sequence[EntityKey], rows: Sequence[FeatureRow | None], fields: Fields
) -> FeatureColumns:
    """The columns of ``rows`` read for ``keys`` (as ``get_many`` returns them)."""
    positions, at = kinds(keys, fields)
    blocks = {}
    for kind, names in fields.items():
        cells = [
            [_cell(row, name) for name in names] for row in (rows[i] or {} for i in positions[kind])
        ]
        flat = list(_flat(_flat(cells)))
        text = any(type(value) is str for value in flat[0::2])
        blocks[kind] = _block(tuple(names), flat, len(cells), numeric=not text)
    return FeatureColumns(blocks, at)


def _cell(row: FeatureRow, name: str) -> tuple[Any, int]:
    stored = row.get(name)
    return _ABSENT_CELL if stored is None else (stored[0], stored[1])


def _block(names: tuple[str, ...], flat: list[Any], rows: int, *, numeric: bool) -> Block:
    """The block of ``flat`` = value, time, value, time … row by row (``numeric``: every
    value a float or None)."""
    shape = (rows, len(names))
    values = flat[0::2]
    times = np.array(flat[1::2], dtype=np.int64).reshape(shape)
    if numeric:
        return Block(names, np.array(values, dtype=np.float64).reshape(shape), times)
    objects = np.empty(len(values), dtype=object)
    objects[:] = values
    return Block(names, objects.reshape(shape), times)


class ColumnDecoder:
    """Packed rows (:mod:`arrive.store.codec`) → :class:`FeatureColumns`, each kind's rows
    in one msgspec call that builds only the features asked (a struct per set of
    features; the others are skipped in C)."""

    def __init__(self) -> None:
        self._decoders: dict[tuple[str, ...], tuple[Any, Any, Any]] = {}

    def decode(
        self, keys: Sequence[EntityKey], packed: Sequence[bytes | None], fields: Fields
    ) -> FeatureColumns:
        """The columns of ``packed`` (one value per key, None when not stored).

        Raises:
            msgspec.DecodeError: a value is not a packed feature vector.
            TypeError: a value is neither bytes nor None.
        """
        positions, at = kinds(keys, fields)
        blocks = {}
        for kind, names in fields.items():
            chosen = [packed[i] for i in positions[kind]]
            blocks[kind] = self._kind(tuple(names), chosen)
        return FeatureColumns(blocks, at)

    def _kind(self, names: tuple[str, ...], packed: list[bytes | None]) -> Block:
        row_type, numeric, general = self._decoders_of(names)
        data = _array_of(packed)
        try:
            rows, only_numbers = numeric.decode(data), True
        except msgspec.ValidationError:  # text among the values (or a malformed row)
            rows, only_numbers = general.decode(data), False
        empty = row_type()
        cells = map(astuple, [empty if row is None else row for row in rows])
        return _block(names, list(_flat(_flat(cells))), len(rows), numeric=only_numbers)

    def _decoders_of(self, names: tuple[str, ...]) -> tuple[Any, Any, Any]:
        found = self._decoders.get(names)
        if found is None:
            found = self._decoders[names] = _decoders(names)
        return found


def _decoders(names: tuple[str, ...]) -> tuple[Any, Any, Any]:
    """A struct of ``names`` (cells defaulting to not stored; other features skipped) and
    its list decoders: numbers only, and any value."""
    attributes = [f"f{j}" for j in range(len(names))]
    rename = dict(zip(attributes, names, strict=True))

    def struct(value: Any) -> Any:
        cell = tuple[value, int]
        spec = [(a, cell, _ABSENT_CELL) for a in attributes]
        return msgspec.defstruct("Row", spec, rename=rename)

    numeric, general = struct(float | None), struct(float | str | None)
    return (
        general,
        msgspec.msgpack.Decoder(list[numeric | None]),  # type: ignore[valid-type]
        msgspec.msgpack.Decoder(list[general | None]),  # type: ignore[valid-type]
    )


def _array_of(packed: list[bytes | None]) -> bytes:
    """``packed`` as one MessagePack array (nil for a value not stored)."""
    n = len(packed)
    head = b"\xdc" + n.to_bytes(2, "big") if n < 65536 else b"\xdd" + n.to_bytes(4, "big")
    return head + b"".join(b"\xc0" if data is None else data for data in packed)
