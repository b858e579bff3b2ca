"""HeuristicEta: delivery-time quantiles from segment statistics with hierarchical back-off.

The benchmark every model must beat, and the serving fallback whenever the model or its
features cannot answer (cold-start stores, stale features, outages, overload).

A *level* is a tuple of key columns, e.g. ``("store_id", "hour")``; ``()`` is the global
level. For each level, ``fit`` computes the quantiles of the target per segment (one
combination of key values) with a vectorised Polars ``group_by``, and keeps only segments
with at least ``min_count`` training rows. To predict, the levels are tried from the most to
the least specific; the first whose segment is kept answers. A null (or, in
:meth:`HeuristicEta.predict_one`, missing) key value skips that level for that order. The
global level always answers, so every order gets a prediction.

Quantiles never cross: each higher quantile is stored as the maximum of itself and every
lower quantile of the same segment. :meth:`HeuristicEta.calibrate` scales every segment's
gaps between quantiles (e.g. P90 − P50) by one conformal scale per quantile, fitted on a
window the segment tables did not see, so that the P90 covers 90 % of new orders rather
than 90 % of the training orders of its segment. Fitted state is JSON-able
(:meth:`HeuristicEta.to_dict`) and never pickled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, Final, Self, TypeGuard

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.calibration import apply_scales, fit_scales
from arrive.errors import ConfigError, DataError, InputFileError, InternalError

logger = logging.getLogger(__name__)

Level = tuple[str, ...]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_LEVELS: Final[tuple[Level, ...]] = (
    ("store_id", "hour"),
    ("store_id",),
    ("market_id", "store_category", "hour"),
    ("market_id", "hour"),
    ("market_id",),
    (),
)
GLOBAL_LEVEL: Final = "global"
FORMAT: Final = "arrive.fallback.HeuristicEta"
FORMAT_VERSION: Final = 1

# Segment keys are normalised to one dtype per kind, so that tables built by fit and by
# from_dict join identically and dict lookups see the same Python values.
_KIND_DTYPES: Final[dict[str, pl.DataType]] = {
    "int": pl.Int64(),
    "str": pl.String(),
    "bool": pl.Boolean(),
}
_KIND_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "int": (int, np.integer),
    "str": (str,),
    "bool": (bool, np.bool_),
}
_COUNT: Final = "__heuristic_n"
_TARGET: Final = "__heuristic_y"

_Lookup = tuple[Level, dict[tuple[Any, ...], FloatArray], str]


def level_name(level: Sequence[str]) -> str:
    """The reason-code name of a level: its columns joined by ``+``, or ``"global"``."""
    return "+".join(level) or GLOBAL_LEVEL


class HeuristicEta:
    """Quantiles of delivery duration (seconds) per segment, with hierarchical back-off.

    Args:
        levels: key-column tuples from the most to the least specific; the last must be the
            global level ``()``. Levels whose columns are absent from the training frame or
            entirely null are left out and reported in ``dropped_levels_``.
        min_count: training rows a segment needs to answer; one int for every level, or one
            per level.
        quantiles: strictly increasing quantiles in (0, 1); the output columns, in order.

    Fitted attributes:
        levels_, level_names_, min_counts_: the levels kept, in back-off order.
        dropped_levels_: level -> why it was left out.
        quantiles_, target_, n_train_, key_kinds_ (column -> ``"int"|"str"|"bool"``).
        scales_: quantile -> the conformal scale of its gap (:meth:`calibrate`); empty
            when not calibrated.
        tables_: one Polars frame per kept level: key columns, ``__heuristic_n`` (support),
            ``__heuristic_q{i}`` (seconds, quantile ``i``).

    Prediction methods are read-only and safe to call from several threads.

    Example:
        >>> frame = pl.DataFrame({"store_id": [1] * 40 + [2] * 5, "duration_s": range(45)})
        >>> eta = HeuristicEta(levels=[("store_id",), ()]).fit(frame)
        >>> eta.predict_one({"store_id": 1})
        (array([19.5, 35.1]), 'store_id')
        >>> eta.predict_one({"store_id": 2})[1]
        'global'
    """

    levels_: tuple[Level, ...]
    level_names_: tuple[str, ...]
    min_counts_: tuple[int, ...]
    dropped_levels_: dict[Level, str]
    quantiles_: tuple[float, ...]
    target_: str
    n_train_: int
    key_kinds_: dict[str, str]
    scales_: dict[float, float]
    tables_: tuple[pl.DataFrame, ...]

    def __init__(
        self,
        levels: Sequence[Sequence[str]] = DEFAULT_LEVELS,
        min_count: int | Sequence[int] = 30,
        quantiles: Sequence[float] = (0.5, 0.9),
    ) -> None:
        self.levels = levels
        self.min_count = min_count
        self.quantiles = quantiles

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (scikit-learn convention)."""
        return {"levels": self.levels, "min_count": self.min_count, "quantiles": self.quantiles}

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, frame: pl.DataFrame, target: str = "duration_s") -> Self:
        """Learn the per-segment quantiles of ``target`` (seconds, >= 0).

        Rows with a null key value do not count towards that level's segments (they still
        count for the levels that do not use that column).

        Raises:
            ConfigError: a parameter is invalid (the message names it).
            DataError: the frame has no usable target, fewer rows than the global level's
                ``min_count``, or a key column of an unsupported dtype.
        """
        levels, min_counts, quantiles = self._checked_params()
        _check_target_name(target, levels)
        _check_frame(frame, target, min_counts[-1])
        dropped = {lvl: r for lvl in levels if (r := _unusable_reason(frame, lvl)) is not None}
        kinds = _key_kinds(frame, [lvl for lvl in levels if lvl not in dropped])
        data = _training_data(frame, kinds, target)
        candidates = [
            (lvl, n) for lvl, n in zip(levels, min_counts, strict=True) if lvl not in dropped
        ]
        kept, sparse = _fit_levels(data, candidates, quantiles)
        self._install(kept, quantiles, target, frame.height)
        used = {c for level in self.levels_ for c in level}
        self.key_kinds_ = {c: k for c, k in kinds.items() if c in used}
        dropped |= sparse
        self.dropped_levels_ = {lvl: dropped[lvl] for lvl in levels if lvl in dropped}
        for level, reason in self.dropped_levels_.items():
            logger.info("heuristic level %s left out: %s", level_name(level), reason)
        return self

    def _checked_params(self) -> tuple[tuple[Level, ...], tuple[int, ...], tuple[float, ...]]:
        levels = _check_levels(self.levels)
        return (
            levels,
            _check_min_count(self.min_count, len(levels)),
            _check_quantiles(self.quantiles),
        )

    def _install(
        self,
        kept: list[tuple[Level, int, pl.DataFrame]],
        quantiles: tuple[float, ...],
        target: str,
        n_train: int,
    ) -> None:
        self.levels_ = tuple(level for level, _, _ in kept)
        self.level_names_ = tuple(level_name(level) for level in self.levels_)
        self.min_counts_ = tuple(count for _, count, _ in kept)
        self.tables_ = tuple(table for _, _, table in kept)
        self.quantiles_ = quantiles
        self.target_ = target
        self.n_train_ = n_train
        self.scales_ = {}
        self._lookups = tuple(
            (level, _lookup(level, table, len(quantiles)), level_name(level))
            for level, _, table in kept
        )

    def calibrate(self, frame: pl.DataFrame, reference: HeuristicEta | None = None) -> Self:
        """Scale every segment's gaps between quantiles so that, on ``frame``, each
        quantile covers its share of the actuals (split conformal, one scale per quantile
        over all segments; the quantile nearest 0.5 stays as it is).

        Args:
            frame: a held-out window with the key columns and the target.
            reference: the same levels fitted only on the orders before ``frame``, which
                then judges it; this estimator, when it was fitted on ``frame`` too,
                takes the scales. None: this estimator judges ``frame`` itself (it must
                not have seen it).

        Raises:
            DataError: ``frame`` lacks the target or has fewer than 50 rows.
        """
        judge = self if reference is None else reference
        self._fitted_lookups()
        if self.target_ not in frame.columns or frame.height < 50:
            raise DataError(f"calibrate: needs at least 50 rows with {self.target_}")
        y = frame.get_column(self.target_).cast(pl.Float64).to_numpy()
        scales = fit_scales(judge.predict(frame), y, self.quantiles_)
        return self._rescaled(scales)

    def _rescaled(self, scales: Mapping[float, float]) -> Self:
        k = len(self.quantiles_)
        tables = []
        for table in self.tables_:
            values = apply_scales(
                table.select(_q(i) for i in range(k)).to_numpy(), self.quantiles_, dict(scales)
            )
            tables.append(table.with_columns(pl.Series(_q(i), values[:, i]) for i in range(k)))
        kept = list(zip(self.levels_, self.min_counts_, tables, strict=True))
        self._install(kept, self.quantiles_, self.target_, self.n_train_)
        self.scales_ = {float(q): float(c) for q, c in scales.items()}
        return self

    # -- prediction ------------------------------------------------------------------------

    def predict(self, frame: pl.DataFrame) -> FloatArray:
        """Quantiles in seconds, shape ``(frame.height, len(quantiles_))``, never crossing.

        Raises:
            DataError: a key column of a kept level is absent or of another kind than in
                training (cast it, or add it as an all-null column to skip that level).
        """
        return self.predict_with_level(frame)[0]

    def predict_with_level(self, frame: pl.DataFrame) -> tuple[FloatArray, IntArray]:
        """Like :meth:`predict`, plus which level answered each row.

        Returns:
            ``(quantiles_s, level)``: ``level[i]`` indexes ``levels_`` / ``level_names_``.
        """
        keys = self._prediction_keys(frame)
        preds = np.full((frame.height, len(self.quantiles_)), np.nan)
        answered = np.full(frame.height, -1, dtype=np.int64)
        for index, (level, table) in enumerate(zip(self.levels_, self.tables_, strict=True)):
            open_rows = answered < 0
            if not open_rows.any():
                break
            values = _level_values(keys, frame.height, level, table, len(self.quantiles_))
            hit = open_rows & ~np.isnan(values[:, 0])
            preds[hit] = values[hit]
            answered[hit] = index
        return preds, answered

    def predict_one(self, keys: Mapping[str, Any]) -> tuple[FloatArray, str]:
        """One order's quantiles (seconds) and the name of the level that answered.

        Dict lookups only: for the serving hot path. A key that is missing or ``None``
        skips the levels that use it. The returned array is read-only and shared.

        Raises:
            DataError: a key value that misses its segment is of another kind than in
                training (e.g. ``"42"`` for an integer ``store_id``), or is unhashable.
        """
        lookups = self._fitted_lookups()
        for columns, table, name in lookups:
            key = tuple([keys.get(c) for c in columns])
            if None in key:
                continue
            try:
                hit = table.get(key)
            except TypeError as exc:
                raise DataError(f"{level_name(columns)}: unhashable key {key!r}") from exc
            if hit is not None:
                return hit, name
            self._check_key_kinds(columns, key)
        raise InternalError("HeuristicEta: the global level did not answer")

    def _fitted_lookups(self) -> tuple[_Lookup, ...]:
        try:
            return self._lookups
        except AttributeError:
            raise InternalError("HeuristicEta is not fitted: call fit() or from_dict()") from None

    def _check_key_kinds(self, columns: Level, key: tuple[Any, ...]) -> None:
        for column, value in zip(columns, key, strict=True):
            kind = self.key_kinds_[column]
            is_bool = isinstance(value, bool | np.bool_)
            if not isinstance(value, _KIND_TYPES[kind]) or (kind == "int" and is_bool):
                raise DataError(f"{column}: {value!r} is not of the training key kind {kind}")

    def _prediction_keys(self, frame: pl.DataFrame) -> pl.DataFrame:
        self._fitted_lookups()
        if not isinstance(frame, pl.DataFrame):
            raise DataError(f"predict: expected a polars DataFrame, got {type(frame).__name__}")
        absent = [c for c in self.key_kinds_ if c not in frame.columns]
        if absent:
            raise DataError(f"{', '.join(absent)}: key column absent from the frame")
        for column, kind in self.key_kinds_.items():
            _check_prediction_dtype(column, frame.schema[column], kind)
        try:
            return frame.select(pl.col(c).cast(_KIND_DTYPES[k]) for c, k in self.key_kinds_.items())
        except pl.exceptions.PolarsError as exc:
            raise DataError(
                f"predict: a key column does not fit its training dtype: {exc}"
            ) from exc

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as plain JSON types; :meth:`from_dict` restores it exactly."""
        self._fitted_lookups()
        levels, min_counts, quantiles = self._checked_params()
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "params": {
                "levels": [list(level) for level in levels],
                "min_count": min_counts[0] if _is_int(self.min_count) else list(min_counts),
                "quantiles": list(quantiles),
            },
            "target": self.target_,
            "n_train": self.n_train_,
            "key_kinds": dict(self.key_kinds_),
            "scales": {str(q): c for q, c in self.scales_.items()},
            "dropped_levels": [
                {"columns": list(level), "reason": reason}
                for level, reason in self.dropped_levels_.items()
            ],
            "levels": [_table_to_dict(*entry) for entry in self._fitted_entries()],
        }

    def _fitted_entries(self) -> list[tuple[Level, int, pl.DataFrame, int]]:
        k = len(self.quantiles_)
        return [
            (level, count, table, k)
            for level, count, table in zip(
                self.levels_, self.min_counts_, self.tables_, strict=True
            )
        ]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeuristicEta:
        """Rebuild a fitted estimator from :meth:`to_dict` output.

        Raises:
            InputFileError: the data is not a HeuristicEta dict of this format version, or
                is malformed.
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise InputFileError(f"heuristic: not a {FORMAT} dict")
        if data.get("format_version") != FORMAT_VERSION:
            version = data.get("format_version")
            raise InputFileError(f"heuristic: format_version {version!r} is not {FORMAT_VERSION}")
        try:
            return cls._from_valid_dict(data)
        except (KeyError, TypeError, ValueError, pl.exceptions.PolarsError, ConfigError) as exc:
            raise InputFileError(f"heuristic: malformed dict: {exc!r}") from exc

    @classmethod
    def _from_valid_dict(cls, data: Mapping[str, Any]) -> HeuristicEta:
        params = data["params"]
        model = cls(
            levels=tuple(tuple(level) for level in params["levels"]),
            min_count=params["min_count"]
            if _is_int(params["min_count"])
            else tuple(params["min_count"]),
            quantiles=tuple(params["quantiles"]),
        )
        quantiles = model._checked_params()[2]
        kinds = {str(c): str(k) for c, k in data["key_kinds"].items()}
        kept = [_table_from_dict(entry, kinds, len(quantiles)) for entry in data["levels"]]
        model._install(kept, quantiles, str(data["target"]), int(data["n_train"]))
        model.key_kinds_ = kinds
        model.scales_ = {float(q): float(c) for q, c in data.get("scales", {}).items()}
        model.dropped_levels_ = {
            tuple(entry["columns"]): str(entry["reason"]) for entry in data["dropped_levels"]
        }
        return model

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"HeuristicEta({params})"


# -- parameter and frame checks --------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_sequence(value: object) -> TypeGuard[Sequence[Any]]:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _check_levels(levels: object) -> tuple[Level, ...]:
    if not _is_sequence(levels) or not levels:
        raise ConfigError(f"levels: expected a non-empty sequence of column tuples, got {levels!r}")
    checked = tuple(_check_level(i, level) for i, level in enumerate(levels))
    if len(set(checked)) != len(checked):
        raise ConfigError(f"levels: a level appears more than once in {checked!r}")
    if checked[-1] != ():
        raise ConfigError(
            "levels: the last level must be the global level () so every order gets an answer"
        )
    return checked


def _check_level(index: int, level: object) -> Level:
    if not _is_sequence(level) or not all(isinstance(c, str) and c for c in level):
        raise ConfigError(f"levels[{index}]: expected a tuple of column names, got {level!r}")
    columns = tuple(level)
    if len(set(columns)) != len(columns):
        raise ConfigError(f"levels[{index}]: a column appears more than once in {columns!r}")
    return columns


def _check_min_count(min_count: object, n_levels: int) -> tuple[int, ...]:
    counts = [min_count] * n_levels if _is_int(min_count) else min_count
    if not _is_sequence(counts) or len(counts) != n_levels:
        raise ConfigError(
            f"min_count: expected an int >= 1 or one per level ({n_levels}), got {min_count!r}"
        )
    bad = [c for c in counts if not _is_int(c) or c < 1]
    if bad:
        raise ConfigError(f"min_count: every count must be an int >= 1, got {bad[0]!r}")
    return tuple(int(c) for c in counts)


def _check_quantiles(quantiles: object) -> tuple[float, ...]:
    if not _is_sequence(quantiles) or not quantiles:
        raise ConfigError(f"quantiles: expected a non-empty sequence, got {quantiles!r}")
    values = list(quantiles)
    if not all(isinstance(q, int | float) and not isinstance(q, bool) for q in values):
        raise ConfigError(f"quantiles: expected numbers in (0, 1), got {values!r}")
    if not all(0.0 < q < 1.0 for q in values) or any(a >= b for a, b in pairwise(values)):
        raise ConfigError(f"quantiles: need strictly increasing values in (0, 1), got {values!r}")
    return tuple(float(q) for q in values)


def _check_target_name(target: object, levels: tuple[Level, ...]) -> None:
    if not isinstance(target, str) or not target:
        raise ConfigError(f"target: expected a column name, got {target!r}")
    if any(target in level for level in levels):
        raise ConfigError(f"target: {target!r} is also a key column in levels")


def _check_frame(frame: object, target: str, min_rows: int) -> None:
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"fit: expected a polars DataFrame, got {type(frame).__name__}")
    if target not in frame.columns:
        raise DataError(f"{target}: the training frame has no such column ({frame.columns})")
    column = frame[target]
    if not column.dtype.is_numeric():
        raise DataError(f"{target}: expected seconds as numbers, got dtype {column.dtype}")
    values = column.cast(pl.Float64)
    _refuse_rows(target, values.is_null(), "null")
    _refuse_rows(target, values.is_nan() | values.is_infinite(), "not finite")
    _refuse_rows(target, values < 0, "negative")
    if frame.height < min_rows:
        raise DataError(
            f"{target}: {frame.height} training rows, the global level needs min_count={min_rows}"
        )


def _refuse_rows(target: str, bad: pl.Series, what: str) -> None:
    count = int(bad.fill_null(False).sum())
    if count:
        first = int(bad.fill_null(False).arg_true()[0])
        raise DataError(f"{target}: {count} values are {what} (first at row {first})")


def _unusable_reason(frame: pl.DataFrame, level: Level) -> str | None:
    absent = [c for c in level if c not in frame.columns]
    if absent:
        return f"column {', '.join(absent)} absent from the training frame"
    null = [c for c in level if frame[c].null_count() == frame.height]
    if null:
        return f"column {', '.join(null)} entirely null in the training frame"
    return None


def key_kind(dtype: pl.DataType) -> str | None:
    """The segment-key kind of a column dtype (``int``, ``str``, ``bool``), or None."""
    if dtype.is_integer():
        return "int"
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return "str"
    if dtype == pl.Boolean:
        return "bool"
    return None


def _key_kinds(frame: pl.DataFrame, levels: list[Level]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for column in dict.fromkeys(c for level in levels for c in level):
        kind = key_kind(frame.schema[column])
        if kind is None:
            raise DataError(
                f"{column}: dtype {frame.schema[column]} cannot be a segment key "
                "(use integer, string, categorical or boolean)"
            )
        kinds[column] = kind
    return kinds


def _check_prediction_dtype(column: str, dtype: pl.DataType, kind: str) -> None:
    if dtype != pl.Null and key_kind(dtype) != kind:
        raise DataError(f"{column}: dtype {dtype} does not match the training key kind {kind}")


# -- segment tables --------------------------------------------------------------------------


def _q(index: int) -> str:
    return f"__heuristic_q{index}"


def _training_data(frame: pl.DataFrame, kinds: dict[str, str], target: str) -> pl.DataFrame:
    return frame.select(
        *(pl.col(c).cast(_KIND_DTYPES[k]) for c, k in kinds.items()),
        pl.col(target).cast(pl.Float64).alias(_TARGET),
    )


def _segment_table(
    data: pl.DataFrame, level: Level, quantiles: tuple[float, ...], min_count: int
) -> pl.DataFrame:
    """Per segment: support and quantiles, sorted by key (deterministic), non-crossing."""
    aggs = [
        pl.len().cast(pl.Int64).alias(_COUNT),
        *(pl.col(_TARGET).quantile(q, "linear").alias(_q(i)) for i, q in enumerate(quantiles)),
    ]
    if not level:
        table = data.select(aggs)
    else:
        table = data.drop_nulls(list(level)).group_by(list(level)).agg(aggs).sort(list(level))
    # Cumulative max over the quantile columns: each higher quantile >= every lower one.
    ordered = [
        pl.max_horizontal([_q(j) for j in range(i + 1)]).alias(_q(i)) for i in range(len(quantiles))
    ]
    return table.filter(pl.col(_COUNT) >= min_count).with_columns(ordered)


def _fit_levels(
    data: pl.DataFrame, candidates: list[tuple[Level, int]], quantiles: tuple[float, ...]
) -> tuple[list[tuple[Level, int, pl.DataFrame]], dict[Level, str]]:
    """Segment tables of the levels that keep at least one segment, and why the others don't."""
    kept: list[tuple[Level, int, pl.DataFrame]] = []
    sparse: dict[Level, str] = {}
    for level, min_count in candidates:
        table = _segment_table(data, level, quantiles, min_count)
        if table.height:
            kept.append((level, min_count, table))
        else:
            sparse[level] = f"no segment has min_count={min_count} training rows"
    return kept, sparse


def _lookup(level: Level, table: pl.DataFrame, k: int) -> dict[tuple[Any, ...], FloatArray]:
    values = np.ascontiguousarray(table.select(_q(i) for i in range(k)).to_numpy(), np.float64)
    values.setflags(write=False)
    keys = table.select(level).rows() if level else [()]
    return dict(zip(keys, values, strict=True))


def _level_values(
    keys: pl.DataFrame, n: int, level: Level, table: pl.DataFrame, k: int
) -> FloatArray:
    """``(n, k)`` quantiles of each row's segment at this level; NaN where it has none."""
    columns = [_q(i) for i in range(k)]
    if not level:
        return np.broadcast_to(table.select(columns).to_numpy()[0], (n, k))
    joined = keys.select(level).join(
        table, on=list(level), how="left", validate="m:1", maintain_order="left"
    )
    return joined.select(columns).to_numpy().astype(np.float64, copy=False)


def _table_to_dict(level: Level, min_count: int, table: pl.DataFrame, k: int) -> dict[str, Any]:
    return {
        "columns": list(level),
        "min_count": min_count,
        "keys": {c: table[c].to_list() for c in level},
        "counts": table[_COUNT].to_list(),
        "quantiles_s": [table[_q(i)].to_list() for i in range(k)],
    }


def _table_from_dict(
    entry: Mapping[str, Any], kinds: dict[str, str], k: int
) -> tuple[Level, int, pl.DataFrame]:
    level = tuple(str(c) for c in entry["columns"])
    if len(entry["quantiles_s"]) != k:
        raise ValueError(f"level {level_name(level)}: expected {k} quantile columns")
    columns = {c: pl.Series(c, entry["keys"][c], dtype=_KIND_DTYPES[kinds[c]]) for c in level}
    table = pl.DataFrame(
        [
            *columns.values(),
            pl.Series(_COUNT, entry["counts"], dtype=pl.Int64),
            *(pl.Series(_q(i), v, dtype=pl.Float64) for i, v in enumerate(entry["quantiles_s"])),
        ]
    )
    values = table.select(_q(i) for i in range(k)).to_numpy()
    if not np.isfinite(values).all() or (np.diff(values, axis=1) < 0).any():
        raise ValueError(f"level {level_name(level)}: quantiles not finite or crossing")
    return level, int(entry["min_count"]), table
