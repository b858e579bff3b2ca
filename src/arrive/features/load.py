"""Open work at a store or in a market: orders placed and not yet finished at
``t``, and orders placed over the last minutes (demand)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec
from arrive.features.windows import Trailing

_RECENT: dict[str, timedelta] = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1)}


def load_specs(entity: Literal["store", "market"]) -> tuple[FeatureSpec, ...]:
    """The load features of ``entity``."""
    out = [
        FeatureSpec(
            f"{entity}_open_orders", entity, "numeric", None, f"orders open at the {entity} now"
        )
    ]
    out += [
        FeatureSpec(
            f"{entity}_orders_{label}",
            entity,
            "numeric",
            None,
            f"orders placed, last {label}",
        )
        for label, length in _RECENT.items()
    ]
    return tuple(out)


def load_online(key: str) -> tuple[Trailing, Trailing]:
    """The declarations of the load features keyed by ``key`` (``store_id`` or ``market_id``)."""
    entity = key.removesuffix("_id")
    open_now = Trailing(
        "open",
        key,
        {"all": None},
        "_open",
        stats=("sum",),
        rename={"_open_sum_all": f"{entity}_open_orders"},
    )
    recent = Trailing(
        "created",
        key,
        _RECENT,
        f"{entity}_orders",
        stats=("count",),
        rename={f"{entity}_orders_count_{label}": f"{entity}_orders_{label}" for label in _RECENT},
    )
    return open_now, recent


def load_offline(ctx: BuildContext, key: str) -> pl.DataFrame:
    """Open and recent orders per ``key`` column (``store_id`` or ``market_id``)."""
    open_now, recent = load_online(key)
    return (
        open_now.offline_in(ctx)
        .join(recent.offline_in(ctx), on="_row")
        .with_columns(pl.exclude("_row").cast(pl.Float64))
    )
