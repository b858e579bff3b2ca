"""The feature drift of a live replay: what the service served, against the model's profile.

The service of the replay writes its prediction log like any other; once the replay
is over the log's published files are read back and the monitor's own PSI
(:func:`arrive.monitoring.drift.drift_by_version`) compares the served feature
values with the reference profile the model carries from training.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path

import polars as pl

from arrive.models.profile import Profile
from arrive.monitoring.drift import MIN_ORDERS, VERSION_SCHEMA, drift_by_version
from arrive.monitoring.prediction_log import SCHEMA, published

logger = logging.getLogger(__name__)


def replay_drift(
    log_dir: Path,
    profiles: Mapping[str, Profile | None],
    orders: Collection[str],
    *,
    min_orders: int = MIN_ORDERS,
) -> pl.DataFrame:
    """PSI per feature of every model version in ``log_dir``'s published prediction log
    (only the answers to ``orders``, the replay's: the directory may hold earlier runs'),
    each against ``profiles[version]``; a feature is named drifted with at least
    ``min_orders`` served values.

    Returns:
        :data:`arrive.monitoring.drift.VERSION_SCHEMA` rows; none when nothing was logged.
    """
    frames = [pl.read_parquet(path, columns=SCHEMA.names) for path in published(log_dir)]
    wanted = list(orders)
    log = (
        pl.concat(frames, how="vertical_relaxed").filter(pl.col("order_id").is_in(wanted))
        if frames
        else pl.DataFrame()
    )
    if log.is_empty():
        logger.warning("live replay: no prediction log of the replay in %s", log_dir)
        return pl.DataFrame(schema=VERSION_SCHEMA)
    return drift_by_version(log, profiles, min_orders=min_orders)
