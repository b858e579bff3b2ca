"""Online quality of closed windows, per model version × variant × segment, in Polars.

For each window of prediction times and each segment (``all``, ``market``,
``local_hour``, ``store_category``, ``store_history``, ``fallback``) of each version
and variant: orders, P50 MAE, P50 and P90 coverage (share of orders delivered by
then), the P90 coverage's 95 % Wilson interval, the late rate (delivered after the
P90), the mean P90 − P50 width, and the heuristic's P50 MAE on the orders where its
P50 is known (``heuristic_orders`` of them).

**Calibration drift**: a row drifts when its P90 coverage's Wilson interval lies
wholly outside the band (default 90 ± 2 pp). A raw threshold would fire on every
small segment by chance; the interval needs enough orders to be sure, so "how many
orders is enough" follows from the data, not a setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

from arrive.errors import ConfigError
from arrive.monitoring.join import TIME

Z_95: Final = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""
SEGMENT_KINDS: Final = (
    "all",
    "market",
    "local_hour",
    "store_category",
    "store_history",
    "fallback",
)
QUALITY: Final = pl.Schema(
    {
        "window_start": TIME,
        "window_end": TIME,
        "version": pl.String(),
        "variant": pl.String(),
        "segment_kind": pl.String(),
        "segment": pl.String(),
        "orders": pl.Int64(),
        "p50_mae_s": pl.Float64(),
        "heuristic_mae_s": pl.Float64(),
        "heuristic_orders": pl.Int64(),
        "p50_coverage": pl.Float64(),
        "p90_coverage": pl.Float64(),
        "p90_coverage_lower": pl.Float64(),
        "p90_coverage_upper": pl.Float64(),
        "late_rate": pl.Float64(),
        "p90_width_s": pl.Float64(),
        "calibration_drift": pl.Boolean(),
    }
)
"""One row per window × version × variant × segment: the Parquet files' schema."""


@dataclass(frozen=True, slots=True)
class Band:
    """The P90 coverage considered calibrated: ``target ± tolerance``.

    Raises:
        ConfigError: the band does not lie within (0, 1).
    """

    target: float = 0.90
    tolerance: float = 0.02

    def __post_init__(self) -> None:
        if not 0 < self.target - self.tolerance < self.target + self.tolerance < 1:
            raise ConfigError(
                f"calibration band: {self.target} ± {self.tolerance} must lie within (0, 1)"
            )


def aggregate(closed: pl.DataFrame, window_s: float, timezone: str, band: Band) -> pl.DataFrame:
    """Quality rows (:data:`QUALITY`) of joined rows of closed windows (:data:`CLOSED`,
    plus an optional ``heuristic_p50_s``), sorted by window, version, variant, segment.
    Cancelled orders (``outcome == "cancelled"``) have no delivery time, requests that
    ended in an error (``error``) no prediction: both ignored."""
    if "outcome" in closed.columns:
        closed = closed.filter(pl.col("outcome").fill_null("delivered") == "delivered")
    if "error" in closed.columns:
        closed = closed.filter(pl.col("error").is_null())
    if closed.is_empty():
        return pl.DataFrame(schema=QUALITY)
    # in a fixed order, so sums (and so means) do not depend on how rows were batched
    rows = _measured(closed.sort("window_start", "request_id"), timezone)
    keys = ["window_start", "version", "variant"]
    parts = [
        rows.group_by([*keys, pl.col(kind).alias("segment")])
        .agg(_figures())
        .with_columns(segment_kind=pl.lit(kind))
        for kind in SEGMENT_KINDS
    ]
    window = pl.duration(microseconds=int(window_s * 1_000_000))
    table = pl.concat(parts).with_columns(window_end=pl.col("window_start") + window)
    return (
        table.with_columns(_wilson(band))
        .select(QUALITY.names())
        .cast(QUALITY)
        .sort("window_start", "version", "variant", "segment_kind", "segment")
    )


def _measured(closed: pl.DataFrame, timezone: str) -> pl.DataFrame:
    created = pl.col("created_at").fill_null(pl.col("time"))
    actual = (pl.col("outcome_time") - created).dt.total_microseconds() / 1e6
    logged = pl.col("heuristic_p50_s") if "heuristic_p50_s" in closed.columns else None
    own = pl.when(pl.col("version") == "heuristic").then(pl.col("p50_s")).otherwise(logged)
    hour = created.dt.convert_time_zone(timezone).dt.hour().cast(pl.String).str.zfill(2)
    return closed.with_columns(
        actual_s=actual,
        heuristic_p50=own,
        all=pl.lit("all"),
        market=pl.col("market_id").fill_null("unknown"),
        local_hour=hour,
        store_category=pl.col("store_category").fill_null("unknown"),
    )


def _figures() -> list[pl.Expr]:
    error = (pl.col("p50_s") - pl.col("actual_s")).abs()
    heuristic_error = (pl.col("heuristic_p50") - pl.col("actual_s")).abs()
    return [
        pl.len().cast(pl.Int64).alias("orders"),
        error.mean().alias("p50_mae_s"),
        heuristic_error.mean().alias("heuristic_mae_s"),
        pl.col("heuristic_p50").count().cast(pl.Int64).alias("heuristic_orders"),
        (pl.col("actual_s") <= pl.col("p50_s")).mean().alias("p50_coverage"),
        (pl.col("actual_s") <= pl.col("p90_s")).mean().alias("p90_coverage"),
        (pl.col("actual_s") > pl.col("p90_s")).mean().alias("late_rate"),
        (pl.col("p90_s") - pl.col("p50_s")).mean().alias("p90_width_s"),
    ]


def _wilson(band: Band) -> list[pl.Expr]:
    """The 95 % Wilson score interval of ``p90_coverage`` over ``orders``, and drift."""
    n = pl.col("orders").cast(pl.Float64)
    p = pl.col("p90_coverage")
    z2 = Z_95 * Z_95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)).sqrt()
    lower, upper = (centre - half).clip(0.0, 1.0), (centre + half).clip(0.0, 1.0)
    low, high = band.target - band.tolerance, band.target + band.tolerance
    return [
        lower.alias("p90_coverage_lower"),
        upper.alias("p90_coverage_upper"),
        ((upper < low) | (lower > high)).alias("calibration_drift"),
    ]


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of ``successes`` out of ``n`` (``n`` > 0)."""
    frame = pl.DataFrame({"orders": [n], "p90_coverage": [successes / n]})
    row = frame.select(_wilson(Band())[:2]).row(0)
    return float(row[0]), float(row[1])
