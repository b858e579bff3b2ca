"""Every feature group's online declarations, gathered in catalog order."""

from __future__ import annotations

from typing import Final

from arrive.features import courier, demand, market, provider, store_history, store_load, weather
from arrive.features.spec import Latest
from arrive.features.windows import Stat, Trailing
from arrive.schema.events import OrderCreated

TRAILING: Final[tuple[Trailing, ...]] = tuple(
    part
    for group in (store_history, store_load, demand, market, courier, weather)
    for part in group.ONLINE
    if isinstance(part, Trailing)
)
LATEST: Final[tuple[Latest, ...]] = tuple(
    part
    for group in (provider, market, weather)
    for part in group.ONLINE
    if isinstance(part, Latest)
)

PIPELINE_KEY: Final = ("pipeline", "engine")
"""Where the engine records its watermark (feature ``watermark``)."""
CELL_KIND: Final = "cell"
"""Entity kind of the courier-proximity grid cells (feature ``idle``)."""


def order_keys(order: OrderCreated, day: str) -> dict[str, str]:
    """The entity ids an order is keyed by: its store, market and courier when known,
    its local ``day`` and its market's day (``market_day``)."""
    ids = {"day": day}
    for name in ("store_id", "market_id", "courier_id"):
        value = getattr(order, name)
        if value is not None:
            ids[name] = value
    if order.market_id is not None:
        ids["market_day"] = f"{order.market_id}|{day}"
    return ids


def trailing_columns() -> dict[str, tuple[Trailing, Stat]]:
    """Feature name → the trailing family and statistic that compute it."""
    return {name: (part, stat) for part in TRAILING for (_, stat), name in part.columns().items()}


def latest_columns() -> dict[str, Latest]:
    """Feature name → the latest-observation family that carries it (derived ones included)."""
    out: dict[str, Latest] = {}
    for part in LATEST:
        out.update(dict.fromkeys(part.columns.values(), part))
        if part.derive:
            out.update(dict.fromkeys(part.derive(dict.fromkeys(part.columns.values())), part))
    return out
