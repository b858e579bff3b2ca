"""Feature drift in ``arrive monitor``: PSI per feature per model version, per closed window.

The served feature vectors (the prediction log's ``features`` JSON) are binned against
their version's reference profile (:mod:`arrive.models.profile`) as the log files are
read, and only the bin counts are held (per window × version × feature × bin, a few
hundred rows a window, checkpointed with the join); the JSON is parsed once, in Polars,
and never kept. When the join closes a window (a prediction arriving later is dropped
there too), its PSI is computed from the counts as :func:`arrive.monitoring.drift.psi_by_feature`
computes it on every row (``limit=None``): same bins, same share floor, same threshold
and ``min_orders`` rule. Windows are those of prediction times, every served answer
counts (joined to an outcome or not); heuristic answers (no model version) and answers
without features do not.

A version whose profile cannot be had (trained before profiles, or not in the
registry) is named once in the log and gets one row a window noting
``no reference profile``; nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Final

import polars as pl

from arrive.errors import ArriveError, ConfigError
from arrive.models.artifact import ModelBundle
from arrive.models.profile import Profile
from arrive.monitoring.drift import (
    MIN_ORDERS,
    NO_PROFILE,
    SHARE_FLOOR,
    THRESHOLD,
    TOO_FEW,
    VERSION_SCHEMA,
    served_features,
)
from arrive.monitoring.join import TIME
from arrive.registry.base import ModelRegistry

logger = logging.getLogger(__name__)

COUNTS: Final = pl.Schema(
    {
        "window_start": TIME,
        "version": pl.String(),
        "feature": pl.String(),
        "bin": pl.Int64(),
        "count": pl.Int64(),
    }
)
"""Held bin counts; the row with a null ``feature`` (bin -1) counts the orders served
with features."""
DRIFT: Final = pl.Schema({"window_start": TIME, "window_end": TIME, **VERSION_SCHEMA})
"""One row per window × version × profiled feature: the ``drift-*.parquet`` files."""
_ORDERS_BIN: Final = -1
ProfileLoader = Callable[[str], Profile | None]
"""A version's reference profile (None: it has none); raises an ArriveError when it cannot."""


def registry_profiles(registry: ModelRegistry) -> ProfileLoader:
    """Loads a version's profile from ``registry`` (its boosters are not parsed)."""

    def load(version: str) -> Profile | None:
        return ModelBundle.profile_from_files(registry.open(version).files)

    return load


class WindowDrift:
    """Bins served vectors as they are read and measures PSI once a window closes.

    Pure apart from loading profiles (cached, once per version); the caller holds the
    counts (:data:`COUNTS`) and checkpoints them.

    Raises:
        ConfigError: a negative ``threshold`` or a ``min_orders`` below 1.
    """

    def __init__(
        self,
        load: ProfileLoader,
        window_s: float,
        *,
        threshold: float = THRESHOLD,
        min_orders: int = MIN_ORDERS,
    ) -> None:
        if not threshold >= 0:
            raise ConfigError(f"drift threshold: must be >= 0, got {threshold}")
        if min_orders < 1:
            raise ConfigError(f"drift min_orders: must be at least 1, got {min_orders}")
        self._load = load
        self._every = f"{int(window_s * 1_000_000)}us"
        self._window = pl.duration(microseconds=int(window_s * 1_000_000))
        self.threshold = threshold
        self.min_orders = min_orders
        self._profiles: dict[str, Profile | None] = {}
        self._references: dict[str, pl.DataFrame] = {}

    def add(self, log: pl.DataFrame, counts: pl.DataFrame) -> pl.DataFrame:
        """``counts`` with the bins of ``log``'s rows (log columns: ``time``,
        ``model_version``, ``features``) added."""
        rows = log.filter(pl.col("model_version").is_not_null()).select(
            pl.col("time").cast(TIME).dt.truncate(self._every).alias("window_start"),
            pl.col("model_version").alias("version"),
            "features",
        )
        if rows.is_empty():
            return counts
        parts = [counts]
        for version in rows.get_column("version").unique().sort().to_list():
            part = rows.filter(pl.col("version") == version)
            parts.extend(self._binned(version, part))
        merged = pl.concat(parts)
        return (
            merged.group_by("window_start", "version", "feature", "bin")
            .agg(pl.col("count").sum())
            .select(COUNTS.names())
            .cast(COUNTS)
        )

    def close(self, counts: pl.DataFrame, until: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The drift rows (:data:`DRIFT`) of the windows ending at or before ``until``,
        and the counts still held."""
        ending = pl.col("window_start") + self._window <= until
        done, held = counts.filter(ending), counts.filter(~ending)
        return self.table(done), held

    def table(self, counts: pl.DataFrame) -> pl.DataFrame:
        """Drift rows (:data:`DRIFT`) of every window in ``counts``, by window, version,
        then each profile's feature order."""
        if counts.is_empty():
            return pl.DataFrame(schema=DRIFT)
        orders = counts.filter(pl.col("bin") == _ORDERS_BIN).select(
            "window_start", "version", orders=pl.col("count")
        )
        versions = orders.get_column("version").unique().sort().to_list()
        measured = [self._reference(v) for v in versions if self._profile(v) is not None]
        parts = []
        if measured:
            parts.append(self._psi(counts, orders, pl.concat(measured)))
        missing = [v for v in versions if self._profile(v) is None]
        if missing:
            parts.append(_no_profile(orders.filter(pl.col("version").is_in(missing))))
        table = pl.concat(parts, how="diagonal_relaxed").with_columns(
            window_end=pl.col("window_start") + self._window
        )
        return table.sort("window_start", "version", "position").select(DRIFT.names()).cast(DRIFT)

    def _psi(
        self, counts: pl.DataFrame, orders: pl.DataFrame, reference: pl.DataFrame
    ) -> pl.DataFrame:
        keys = ["window_start", "version", "feature"]
        grid = orders.join(reference, on="version").join(counts, on=[*keys, "bin"], how="left")
        count = pl.col("count").fill_null(0).cast(pl.Float64)
        total = count.sum().over(keys)
        actual = pl.max_horizontal(count / pl.max_horizontal(total, 1.0), SHARE_FLOOR)
        expected = pl.max_horizontal(pl.col("share"), SHARE_FLOOR)
        term = (actual - expected) * (actual / expected).log()
        found = grid.group_by(keys).agg(
            pl.col("kind").first(),
            pl.col("position").first(),
            pl.col("orders").first(),
            term.sum().alias("psi"),
        )
        enough = pl.col("orders") >= self.min_orders
        return found.with_columns(
            psi=pl.when(pl.col("orders") > 0).then("psi"),
            drifted=enough & (pl.col("psi") > self.threshold) & (pl.col("orders") > 0),
            note=pl.when(enough).then(pl.lit(None, pl.String)).otherwise(pl.lit(TOO_FEW)),
        )

    def _binned(self, version: str, rows: pl.DataFrame) -> list[pl.DataFrame]:
        served = rows.filter(pl.col("features").is_not_null())
        orders = rows.group_by("window_start").agg(
            pl.col("features").is_not_null().sum().cast(pl.Int64).alias("count")
        )
        parts = [_with_key(orders, version, None, pl.lit(_ORDERS_BIN))]
        profile = self._profile(version)
        if profile is None or served.is_empty():
            return parts
        values = _decoded(served, profile)
        starts = served.get_column("window_start")
        for name, feature in profile.features.items():
            binned = pl.DataFrame({"window_start": starts, "bin": feature.bins(values[name])})
            counted = binned.group_by("window_start", "bin").agg(pl.len().alias("count"))
            parts.append(_with_key(counted, version, name, pl.col("bin")))
        return parts

    def _profile(self, version: str) -> Profile | None:
        if version not in self._profiles:
            try:
                found = self._load(version)
            except ArriveError as exc:
                logger.warning("model version %s: no reference profile (%s)", version, exc)
                found = None
            else:
                if found is None:
                    logger.warning("model version %s: no reference profile, no drift", version)
            self._profiles[version] = found
        return self._profiles[version]

    def _reference(self, version: str) -> pl.DataFrame:
        """Every bin of ``version``'s profile with its training share."""
        if version not in self._references:
            profile = self._profiles[version]
            rows = [
                (version, name, position, feature.kind, index, share)
                for position, (name, feature) in enumerate((profile or _EMPTY).features.items())
                for index, share in enumerate(feature.shares)
            ]
            schema = {
                "version": pl.String(),
                "feature": pl.String(),
                "position": pl.Int64(),
                "kind": pl.String(),
                "bin": pl.Int64(),
                "share": pl.Float64(),
            }
            self._references[version] = pl.DataFrame(rows, schema=schema, orient="row")
        return self._references[version]


_EMPTY: Final = Profile({}, 0)


def _decoded(served: pl.DataFrame, profile: Profile) -> pl.DataFrame:
    """One column per profiled feature (numeric Float64, categorical String), parsed in
    Polars; a vector whose values have unexpected types falls back to the per-row
    decoder of :func:`arrive.monitoring.drift.served_features`."""
    fields = {
        name: pl.String() if p.kind == "categorical" else pl.Float64()
        for name, p in profile.features.items()
    }
    try:
        decoded = served.get_column("features").str.json_decode(pl.Struct(fields))
    except pl.exceptions.PolarsError:
        return served_features(served, profile)
    return decoded.struct.unnest()


def _with_key(
    frame: pl.DataFrame, version: str, feature: str | None, bin_: pl.Expr
) -> pl.DataFrame:
    return frame.select(
        "window_start",
        pl.lit(version, pl.String()).alias("version"),
        pl.lit(feature, pl.String()).alias("feature"),
        bin_.cast(pl.Int64).alias("bin"),
        pl.col("count").cast(pl.Int64),
    )


def _no_profile(orders: pl.DataFrame) -> pl.DataFrame:
    return orders.select(
        "window_start",
        "version",
        pl.lit(None, pl.String()).alias("feature"),
        pl.lit(None, pl.String()).alias("kind"),
        pl.lit(0, pl.Int64()).alias("orders"),
        pl.lit(None, pl.Float64()).alias("psi"),
        pl.lit(value=False).alias("drifted"),
        pl.lit(NO_PROFILE).alias("note"),
        pl.lit(-1, pl.Int64()).alias("position"),
    )
