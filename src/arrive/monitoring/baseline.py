"""The heuristic's P50 for orders the model answered: the baseline of online quality.

The prediction log holds the heuristic's P50 only for the heuristic's own answers
(``p50_s`` of a fallback); adding it to every model answer would cost the service a
heuristic lookup per order on its hot path. The monitor computes it instead, off the
hot path, vectorised, from the heuristic stored with each model version (the one
that version's fallback uses) and the order's attributes from its ``order_created``
event (store, market, category, local hour). A key the monitor does not know (an
attribute outside the canonical fields) is left null, which skips the heuristic
levels that use it, as serving does for a missing key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import polars as pl

from arrive.errors import ArriveError
from arrive.fallback.heuristic import HeuristicEta
from arrive.models.artifact import ModelBundle
from arrive.registry.base import ModelRegistry
from arrive.schema.eta import P50, quantile_index

logger = logging.getLogger(__name__)

_DTYPES = {"int": pl.Int64(), "str": pl.String(), "bool": pl.Boolean()}
Loader = Callable[[str], HeuristicEta]
"""The heuristic stored with a model version; raises an ArriveError when it cannot."""


class HeuristicBaseline:
    """:class:`arrive.monitoring.monitor.Baseline` from each version's heuristic.

    Args:
        load: returns a version's heuristic (e.g. :func:`registry_loader`).
        timezone: the marketplace's zone (the heuristic's ``hour`` is local).

    A version whose heuristic cannot be loaded gets nulls (logged once).
    """

    def __init__(self, load: Loader, timezone: str) -> None:
        self._load = load
        self._timezone = timezone
        self._cache: dict[str, HeuristicEta | None] = {}

    def p50_s(self, rows: pl.DataFrame) -> pl.Series:
        out = np.full(rows.height, np.nan)
        created = pl.col("created_at").fill_null(pl.col("time"))
        keyed = rows.with_columns(
            hour=created.dt.convert_time_zone(self._timezone).dt.hour().cast(pl.Int64),
            __row=pl.int_range(pl.len()),
        )
        for version in keyed.get_column("version").unique().to_list():
            heuristic = self._heuristic(version)
            if heuristic is None:
                continue
            part = keyed.filter(pl.col("version") == version)
            index = part.get_column("__row").to_numpy()
            column = quantile_index(heuristic.quantiles_, P50, "the heuristic")
            out[index] = heuristic.predict(_with_keys(part, heuristic))[:, column]
        return pl.Series("heuristic_p50_s", out).fill_nan(None)

    def _heuristic(self, version: str) -> HeuristicEta | None:
        if version == "heuristic":
            return None
        if version not in self._cache:
            try:
                self._cache[version] = self._load(version)
            except ArriveError as exc:
                logger.warning("no heuristic for model version %s: %s", version, exc)
                self._cache[version] = None
        return self._cache[version]


def registry_loader(registry: ModelRegistry) -> Loader:
    """Loads a version's heuristic from ``registry`` (its boosters are not parsed)."""

    def load(version: str) -> HeuristicEta:
        heuristic, _ = ModelBundle.heuristic_from_files(registry.open(version).files)
        return heuristic

    return load


def _with_keys(part: pl.DataFrame, heuristic: HeuristicEta) -> pl.DataFrame:
    """``part`` with each of the heuristic's key columns, null where unknown."""
    return part.select(
        (pl.col(c) if c in part.columns else pl.lit(None))
        .cast(_DTYPES[kind], strict=False)
        .alias(c)
        for c, kind in heuristic.key_kinds_.items()
    )
