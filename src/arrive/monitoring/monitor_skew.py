"""Training/serving skew in ``arrive monitor``: every ``every_s`` seconds, a sample of the
answers served since the last check is recomputed offline from the event log of a data
directory (:func:`arrive.monitoring.skew.skew_sample`).

The sample is a uniform one of the answers with features read since the last check,
kept as they are read: each row gets a seeded random key and the ``sample`` rows with
the smallest keys are kept (bottom-k sampling), so at most ``sample`` rows are ever held.
It is not checkpointed: a restart loses at most one interval's sample, and the next
check measures the answers read after it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from arrive.clock import Clock
from arrive.errors import ArriveError, ConfigError
from arrive.monitoring.skew import skew_sample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkewSettings:
    """Where and how often skew is measured.

    Attributes:
        events_dir: a data directory whose event log covers the served orders.
        every_s: seconds between two checks (the monitor's clock).
        sample: most answers recomputed per check.
        seed: the sample's seed.

    Raises:
        ConfigError: ``every_s`` not positive or ``sample`` below 1 (naming the field).
    """

    events_dir: Path
    every_s: float = 900.0
    sample: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.every_s > 0:
            raise ConfigError(f"skew every_s: must be > 0, got {self.every_s}")
        if self.sample < 1:
            raise ConfigError(f"skew sample: must be at least 1, got {self.sample}")


class SkewCheck:
    """The sample held between checks, and the checks (see the module docstring)."""

    def __init__(self, settings: SkewSettings, clock: Clock, timezone: str) -> None:
        self.settings = settings
        self.clock = clock
        self.timezone = timezone
        self._rng = np.random.default_rng(settings.seed)
        self._held = pl.DataFrame(
            schema={
                "order_id": pl.String(),
                "time": pl.Datetime("us", "UTC"),
                "features": pl.String(),
                "key": pl.Float64(),
            }
        )
        self._next: datetime = clock.now() + timedelta(seconds=settings.every_s)

    def add(self, log: pl.DataFrame) -> None:
        """Offer ``log``'s answers with features (log columns) to the sample."""
        rows = log.filter(pl.col("features").is_not_null())
        if rows.is_empty():
            return
        keyed = rows.select(
            "order_id",
            pl.col("time").cast(pl.Datetime("us", "UTC")),
            "features",
            key=pl.Series(self._rng.random(rows.height)),
        )
        merged = pl.concat([self._held, keyed])
        self._held = merged.sort("key").head(self.settings.sample)

    def due(self) -> bool:
        return self.clock.now() >= self._next

    def run(self) -> pl.DataFrame | None:
        """Compare the held sample with the event log, start a new sample; the mismatch
        rows (:data:`arrive.monitoring.skew.SCHEMA`), or None when nothing could be
        compared (no answer with features, no event log: logged)."""
        self._next = self.clock.now() + timedelta(seconds=self.settings.every_s)
        held, self._held = self._held, self._held.clear()
        if held.is_empty():
            return None
        settings = self.settings
        try:
            return skew_sample(
                held.drop("key"),
                settings.events_dir,
                sample=settings.sample,
                seed=settings.seed,
                timezone=self.timezone,
            )
        except ArriveError as exc:
            logger.warning("skew not measured: %s", exc)
            return None
