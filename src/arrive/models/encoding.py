"""Turning a feature frame into the float matrix the trees read.

Categorical columns become integer codes from a vocabulary learned at fit time
(stored with the model as JSON); an unseen or missing category reads as NaN,
which the trees treat as missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import DataError

Vocabulary = dict[str, list[str]]


def learn_vocabulary(frame: pl.DataFrame, categorical: Sequence[str]) -> Vocabulary:
    """Sorted distinct non-null values of each categorical column."""
    return {
        name: sorted(str(v) for v in frame.get_column(name).drop_nulls().unique().to_list())
        for name in categorical
    }


def to_matrix(
    frame: pl.DataFrame, features: Sequence[str], vocabulary: Mapping[str, Sequence[str]]
) -> npt.NDArray[np.float64]:
    """A C-contiguous float64 matrix of ``features`` in order.

    Raises:
        DataError: a feature column is absent from ``frame``.
    """
    absent = [f for f in features if f not in frame.columns]
    if absent:
        raise DataError(f"features missing from the data: {', '.join(absent)}")
    columns = [_encode(frame.get_column(f), vocabulary.get(f)) for f in features]
    return np.ascontiguousarray(np.column_stack(columns) if columns else np.empty((len(frame), 0)))


def _encode(column: pl.Series, vocabulary: Sequence[str] | None) -> npt.NDArray[np.float64]:
    if vocabulary is None:
        return column.cast(pl.Float64).fill_null(np.nan).to_numpy()
    codes = column.cast(pl.String).replace_strict(
        list(vocabulary), list(range(len(vocabulary))), default=None, return_dtype=pl.Float64
    )
    return codes.fill_null(np.nan).to_numpy()
