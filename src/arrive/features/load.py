"""Open work at a store or in a market: orders placed and not yet finished at
``t``, and orders placed over the last minutes (demand)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec
from arrive.features.windows import trailing_stats

_RECENT: dict[str, timedelta] = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1)}


def load_specs(entity: Literal["store", "market"]) -> tuple[FeatureSpec, ...]:
    """The load features of ``entity``."""
    out = [
        FeatureSpec(
            f"{entity}_open_orders", entity, "numeric", 3600.0, f"orders open at the {entity} now"
        )
    ]
    out += [
        FeatureSpec(
            f"{entity}_orders_{label}",
            entity,
            "numeric",
            length.total_seconds(),
            f"orders placed, last {label}",
        )
        for label, length in _RECENT.items()
    ]
    return tuple(out)


def load_offline(ctx: BuildContext, key: str) -> pl.DataFrame:
    """Open and recent orders per ``key`` column (``store_id`` or ``market_id``)."""
    prefix = key.removesuffix("_id")
    queries = ctx.orders.select("_row", key, t=pl.col("created_at"))
    life = ctx.lifecycle
    created = life.select(key, time=pl.col("created"), value=pl.lit(1.0))
    ended = life.select(key, time=pl.col("terminal"), value=pl.lit(1.0))
    placed = trailing_stats(
        queries,
        created,
        key=key,
        windows={"all": None, **dict[str, timedelta | None](_RECENT)},
        prefix="_c",
        stats=("count",),
    )
    done = trailing_stats(
        queries, ended, key=key, windows={"all": None}, prefix="_d", stats=("count",)
    )
    return placed.join(done, on="_row").select(
        "_row",
        pl.col("_c_count_all")
        .sub(pl.col("_d_count_all"))
        .cast(pl.Float64)
        .alias(f"{prefix}_open_orders"),
        *(
            pl.col(f"_c_count_{label}").cast(pl.Float64).alias(f"{prefix}_orders_{label}")
            for label in _RECENT
        ),
    )
