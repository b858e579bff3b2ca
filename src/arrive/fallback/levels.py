"""Choosing the heuristic's back-off levels from the attributes a marketplace has.

Which segments predict delivery time differs between marketplaces: store and hour on
one, road traffic × weather × city type on another that has no useful store ids. The
levels are therefore chosen on data, not fixed:

1. candidates are every combination of up to ``max_columns`` key columns (segment keys
   known when the order is placed: store, market, category, hour and the source's own
   attributes of an integer, string or boolean type);
2. each candidate's segment medians are computed on the training rows, keeping only
   segments with at least ``min_count`` rows (min support);
3. greedy forward selection on the validation rows: starting from the global level, the
   candidate (and its place in the back-off chain) that lowers the validation MAE of the
   P50 the most is added, while it lowers it by more than ``tolerance`` (relative).

The training rows never see the validation rows, and neither sees the test period.

Example:
    >>> frame = pl.DataFrame({"zone": ["a", "b"] * 200, "duration_s": [600.0, 1200.0] * 200})
    >>> choose_levels(frame[:300], frame[300:], ["zone"]).levels
    (('zone',), ())
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import ConfigError, DataError
from arrive.fallback.heuristic import Level, key_kind

FloatArray = npt.NDArray[np.float64]

#: Columns that are never segment keys: they identify one order, or are not known at creation.
NOT_KEYS: Final = frozenset(
    {"order_id", "courier_id", "status", "source_line", "created_at", "delivered_at"}
)


@dataclass(frozen=True)
class LevelChoice:
    """The chosen back-off chain and how it scored on the validation rows.

    Attributes:
        levels: from the most to the least specific, ending with the global level ``()``.
        mae_s: validation MAE of the P50 after each accepted step (the first is global only).
        candidates: how many column combinations were tried.
    """

    levels: tuple[Level, ...]
    mae_s: tuple[float, ...]
    candidates: int


def key_columns(frame: pl.DataFrame, target: str = "duration_s") -> list[str]:
    """The columns of ``frame`` that can key a segment: a key dtype, not entirely null."""
    return [
        c
        for c in frame.columns
        if c not in NOT_KEYS
        and c != target
        and key_kind(frame.schema[c]) is not None
        and frame.get_column(c).null_count() < frame.height
    ]


def choose_levels(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    columns: Sequence[str],
    *,
    target: str = "duration_s",
    min_count: int = 30,
    max_columns: int = 3,
    max_levels: int = 6,
    tolerance: float = 0.002,
) -> LevelChoice:
    """Greedy forward selection of back-off levels on ``valid`` (see the module docstring).

    Raises:
        ConfigError: a parameter out of range.
        DataError: a column or the target absent from a frame, or no validation row.
    """
    _check(train, valid, columns, target, (min_count, max_columns, max_levels))
    y = valid.get_column(target).cast(pl.Float64).to_numpy()
    fallback = float(np.median(train.get_column(target).cast(pl.Float64).to_numpy()))
    tables = _candidate_answers(train, valid, columns, target, min_count, max_columns)
    chain: list[tuple[Level, FloatArray]] = []
    history = [_mae(np.full_like(y, fallback), y)]
    while len(chain) < max_levels - 1:
        step = _best_step(chain, tables, fallback, y)
        if step is None or step[0] >= history[-1] * (1.0 - tolerance):
            break
        mae, position, level = step
        chain.insert(position, (level, tables.pop(level)))
        history.append(mae)
    levels = (*(level for level, _ in chain), ())
    return LevelChoice(levels, tuple(history), len(tables) + len(chain))


def _check(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    columns: Sequence[str],
    target: str,
    counts: tuple[int, int, int],
) -> None:
    for name, value in zip(("min_count", "max_columns", "max_levels"), counts, strict=True):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}: must be an int >= 1, got {value!r}")
    if valid.height == 0:
        raise DataError("choose_levels: no validation row to choose the levels on")
    for part, frame in (("training", train), ("validation", valid)):
        absent = [c for c in (*columns, target) if c not in frame.columns]
        if absent:
            raise DataError(f"{absent[0]}: absent from the {part} rows")


def _candidate_answers(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    columns: Sequence[str],
    target: str,
    min_count: int,
    max_columns: int,
) -> dict[Level, FloatArray]:
    """Per candidate level: each validation row's segment median (NaN: no supported segment)."""
    answers: dict[Level, FloatArray] = {}
    for size in range(1, min(max_columns, len(columns)) + 1):
        for level in combinations(columns, size):
            values = _segment_medians(train, valid, level, target, min_count)
            if not np.isnan(values).all():
                answers[level] = values
    return answers


def _segment_medians(
    train: pl.DataFrame, valid: pl.DataFrame, level: Level, target: str, min_count: int
) -> FloatArray:
    keys = list(level)
    table = (
        train.drop_nulls(keys)
        .group_by(keys)
        .agg(pl.len().alias("__n"), pl.col(target).cast(pl.Float64).median().alias("__p50"))
        .filter(pl.col("__n") >= min_count)
        .drop("__n")
    )
    cast = [pl.col(c).cast(train.schema[c]) for c in keys]
    joined = valid.select(cast).join(table, on=keys, how="left", maintain_order="left")
    return joined.get_column("__p50").to_numpy().astype(np.float64)


def _best_step(
    chain: list[tuple[Level, FloatArray]],
    tables: dict[Level, FloatArray],
    fallback: float,
    y: FloatArray,
) -> tuple[float, int, Level] | None:
    """The (validation MAE, position, level) of the best single insertion into ``chain``."""
    best: tuple[float, int, Level] | None = None
    for position in range(len(chain) + 1):
        before = _first_answer([v for _, v in chain[:position]], np.nan, len(y))
        after = _first_answer([v for _, v in chain[position:]], fallback, len(y))
        for level, values in tables.items():
            pred = np.where(np.isnan(before), np.where(np.isnan(values), after, values), before)
            mae = _mae(pred, y)
            if best is None or mae < best[0]:
                best = (mae, position, level)
    return best


def _first_answer(levels: list[FloatArray], default: float, n: int) -> FloatArray:
    out = np.full(n, default)
    for values in reversed(levels):
        out = np.where(np.isnan(values), out, values)
    return out


def _mae(pred: FloatArray, y: FloatArray) -> float:
    return float(np.mean(np.abs(pred - y)))
