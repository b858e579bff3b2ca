"""The point-in-time training set of a data directory: features, target, segments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive import datadir
from arrive.errors import DataError
from arrive.features import BuildContext, FeatureSet, build_features


@dataclass(frozen=True)
class TrainingSet:
    """Delivered orders with their features and target, in creation order.

    Attributes:
        orders: the spine (``order_id``, ``created_at``, entities, ``duration_s``, ``hour``).
        features: point-in-time features, row-aligned with ``orders``.
        local_timezone: the marketplace's zone.
    """

    orders: pl.DataFrame
    features: FeatureSet
    local_timezone: str

    @property
    def target_s(self) -> npt.NDArray[np.float64]:
        return self.orders.get_column("duration_s").to_numpy().astype(np.float64)


def load_training_set(
    directory: Path, client: Any = None, *, window_days: int | None = None
) -> TrainingSet:
    """Build the training set of an imported or simulated data directory.

    With a Dask ``client``, feature groups are computed on its cluster. With
    ``window_days``, only the orders of the data's last ``window_days`` × 24 h are kept
    (their features still look back over the whole event log).

    Raises:
        InputFileError: the directory has no orders table or event log.
        DataError: no delivered order with a target.
    """
    ctx = build_context(Path(directory))
    if window_days is not None:
        ctx = _last_days(ctx, window_days)
    features = build_features(ctx, client)
    local = pl.col("created_at").dt.convert_time_zone(ctx.local_timezone)
    spine = ctx.orders.drop("_row").with_columns(hour=local.dt.hour())
    return TrainingSet(spine, features, ctx.local_timezone)


def build_context(directory: Path) -> BuildContext:
    """What the offline feature builder needs of a data directory: the spine of delivered
    orders, the event log (lazily), the marketplace's zone and the source's attributes.

    Raises:
        InputFileError: the directory has no orders table or event log.
        DataError: no delivered order with a target.
    """
    orders = datadir.read_orders(directory)
    events = datadir.scan_events(directory)
    if "duration_s" not in orders.columns:
        raise DataError(f"{directory}: the orders table has no target column duration_s")
    spine = datadir.spine_of(orders, events)
    if spine.is_empty():
        raise DataError(f"{directory}: no delivered order with a known duration")
    timezone = datadir.local_timezone(directory)
    attributes = tuple(c for c in orders.columns if c not in datadir.ORDER_COLUMNS)
    return BuildContext(spine, events, timezone, attributes)


def _last_days(ctx: BuildContext, days: int) -> BuildContext:
    """``ctx`` with the orders of its last ``days`` × 24 h only."""
    if days < 1:
        raise DataError(f"window_days: must be >= 1, not {days}")
    orders = ctx.orders.drop("_row")
    last = orders.get_column("created_at").max()
    assert isinstance(last, datetime)
    kept = orders.filter(pl.col("created_at") > last - timedelta(days=days))
    return BuildContext(kept, ctx.events, ctx.local_timezone, ctx.attributes)
