"""Request-time features of the order itself: size, value, distance, ids and the
source's own context attributes (known when the order is placed)."""

from __future__ import annotations

import polars as pl

from arrive.features.spec import BuildContext, Entity, FeatureScalar, FeatureSpec, Kind
from arrive.geo import haversine_km_expr
from arrive.schema.events import OrderCreated

name = "order"

_NUMERIC = {
    "items": "number of items",
    "distinct_items": "number of distinct items",
    "subtotal": "order value (currency units)",
}
_IDS: dict[str, tuple[Entity, str]] = {
    "store_id": ("store", "store id (categorical)"),
    "market_id": ("market", "market id (categorical)"),
    "store_category": ("store", "store category (categorical)"),
    "courier_id": ("courier", "courier id when known at creation (categorical)"),
}
_COORDS = ("pickup_lat", "pickup_lon", "drop_lat", "drop_lon")
ONLINE_FIELDS = (*_NUMERIC, *_IDS)
"""The order's own fields :func:`online` gives (numbers as floats)."""
NUMBER = (int, float)  # bool included: it is an int
"""Types :func:`online` gives as floats."""


def missing(ctx: BuildContext) -> str | None:
    return None


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    out = []
    if all(ctx.has_column(c) for c in _COORDS):
        out.append(
            FeatureSpec("distance_km", "order", "numeric", None, "pickup-to-drop great-circle km")
        )
    out += [
        FeatureSpec(c, "order", "numeric", None, d)
        for c, d in _NUMERIC.items()
        if ctx.has_column(c)
    ]
    out += [
        FeatureSpec(c, entity, "categorical", None, d)
        for c, (entity, d) in _IDS.items()
        if ctx.has_column(c)
    ]
    out += [_attribute_spec(c, ctx.orders.schema[c]) for c in ctx.attributes if ctx.has_column(c)]
    return tuple(out)


def offline(ctx: BuildContext) -> pl.DataFrame:
    columns = [s.name for s in specs(ctx)]
    frame = ctx.orders.with_columns(
        distance_km=haversine_km_expr(*(pl.col(c) for c in _COORDS))
        if all(c in ctx.orders.columns for c in _COORDS)
        else pl.lit(None, pl.Float64)
    )
    return frame.select("_row", *columns).with_columns(pl.col(pl.Boolean).cast(pl.Float64))


def _attribute_spec(column: str, dtype: pl.DataType) -> FeatureSpec:
    numeric = dtype.is_numeric() or dtype == pl.Boolean
    kind: Kind = "numeric" if numeric else "categorical"
    return FeatureSpec(column, "order", kind, None, f"source attribute '{column}' at creation")


def online(order: OrderCreated, distance_km: float | None) -> dict[str, FeatureScalar]:
    """Online twin of :func:`offline` for one order (every field it may use), with its
    distance (:func:`arrive.features.travel.order_distance_km`)."""
    values: dict[str, FeatureScalar] = {"distance_km": distance_km}
    for name in ONLINE_FIELDS:
        raw = getattr(order, name)
        values[name] = float(raw) if isinstance(raw, NUMBER) else raw
    for name, raw in order.attributes.items():
        values[name] = float(raw) if isinstance(raw, NUMBER) else raw
    return values
