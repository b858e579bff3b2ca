"""Couriers: the assigned courier's recent work when the order names one at
creation, and courier proximity — idle couriers near the pickup point and the
distance to the nearest — from location pings before ``t``."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec
from arrive.features.windows import Trailing
from arrive.geo import haversine_km

name = "courier"

NEAR_RADIUS_KM = 3.0
NEAREST_MAX_KM = 5.0
"""The nearest idle courier is looked for within this distance (farther: unknown)."""
PING_TTL = timedelta(minutes=10)
_HISTORY: dict[str, timedelta | None] = {
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "all": None,
}


COUNTS = Trailing(
    "delivery",
    "courier_id",
    _HISTORY,
    "courier_deliveries",
    stats=("count",),
    rename={f"courier_deliveries_count_{k}": f"courier_deliveries_{k}" for k in _HISTORY},
)
MEAN = Trailing(
    "delivery", "courier_id", {"7d": timedelta(days=7)}, "courier_delivery", stats=("mean",)
)
ONLINE = (COUNTS, MEAN)
"""Online twins of the history features; proximity's online twin is :class:`CourierCells`."""


def missing(ctx: BuildContext) -> str | None:
    if _has_history(ctx) or _has_pings(ctx):
        return None
    return "no courier known at order creation and no courier pings with pickup coordinates"


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    out: list[FeatureSpec] = []
    if _has_history(ctx):
        out += [
            FeatureSpec(
                f"courier_deliveries_{label}",
                "courier",
                "numeric",
                None,
                f"the courier's deliveries, last {label}",
            )
            for label, w in _HISTORY.items()
        ]
        out.append(
            FeatureSpec(
                "courier_delivery_mean_7d",
                "courier",
                "numeric",
                None,
                "the courier's mean delivery s, last 7d",
                1e-3,
            )
        )
    if _has_pings(ctx):
        ttl = PING_TTL.total_seconds()
        out += [
            FeatureSpec(
                "idle_couriers_near",
                "store",
                "numeric",
                ttl,
                f"idle couriers within {NEAR_RADIUS_KM} km of pickup",
            ),
            FeatureSpec(
                "nearest_idle_courier_km",
                "store",
                "numeric",
                ttl,
                f"km from pickup to the nearest idle courier within {NEAREST_MAX_KM} km",
                1e-6,
            ),
        ]
    return tuple(out)


def offline(ctx: BuildContext) -> pl.DataFrame:
    frame = ctx.orders.select("_row")
    if _has_history(ctx):
        frame = frame.join(_history(ctx), on="_row")
    if _has_pings(ctx):
        frame = frame.join(_proximity(ctx), on="_row")
    return frame


def _has_history(ctx: BuildContext) -> bool:
    return ctx.has_column("courier_id") and bool(ctx.event_counts.get("delivered"))


def _has_pings(ctx: BuildContext) -> bool:
    return bool(ctx.event_counts.get("courier_ping")) and ctx.has_column("pickup_lat")


def _history(ctx: BuildContext) -> pl.DataFrame:
    return (
        COUNTS.offline_in(ctx)
        .with_columns(pl.exclude("_row").cast(pl.Float64))
        .join(MEAN.offline_in(ctx), on="_row")
    )


def _proximity(ctx: BuildContext) -> pl.DataFrame:
    """Replays pings in time order (the online update, run offline) and reads the
    courier state strictly before each order's creation."""
    pings = (
        ctx.events.filter(pl.col("type") == "courier_ping")
        .select("event_time", "courier_id", "lat", "lon", "status")
        .sort("event_time")
        .collect()
    )
    orders = ctx.orders.select("_row", "created_at", "pickup_lat", "pickup_lon").sort("created_at")
    near, nearest = _sweep(pings, orders)
    return (
        orders.select("_row")
        .with_columns(
            idle_couriers_near=pl.Series(near).fill_nan(None),
            nearest_idle_courier_km=pl.Series(nearest).fill_nan(None),
        )
        .sort("_row")
    )


def _last_per_courier(batch: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Positions of each courier's last ping within a time-ordered batch."""
    if batch.size == 1:
        return np.zeros(1, dtype=np.intp)
    _, first_from_end = np.unique(batch[::-1], return_index=True)
    return np.asarray(batch.size - 1 - first_from_end, dtype=np.intp)


def _sweep(
    pings: pl.DataFrame, orders: pl.DataFrame
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    codes, couriers = np.unique(pings.get_column("courier_id").to_numpy(), return_inverse=True)
    n = len(codes)
    lat, lon = np.full(n, np.nan), np.full(n, np.nan)
    seen = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    idle = np.zeros(n, dtype=bool)
    p_time = pings.get_column("event_time").dt.epoch("us").to_numpy()
    p_lat, p_lon = pings.get_column("lat").to_numpy(), pings.get_column("lon").to_numpy()
    p_idle = (pings.get_column("status") == "idle").to_numpy()
    o_time = orders.get_column("created_at").dt.epoch("us").to_numpy()
    o_lat, o_lon = (
        orders.get_column("pickup_lat").to_numpy(),
        orders.get_column("pickup_lon").to_numpy(),
    )
    ends = np.searchsorted(p_time, o_time, side="left")  # pings strictly before t
    ttl_us = int(PING_TTL.total_seconds() * 1e6)
    near = np.full(len(orders), np.nan)
    nearest = np.full(len(orders), np.nan)
    start = 0
    for i, end in enumerate(ends):
        if end > start:
            sel = _last_per_courier(couriers[start:end]) + start
            idx = couriers[sel]
            lat[idx], lon[idx], seen[idx], idle[idx] = (
                p_lat[sel],
                p_lon[sel],
                p_time[sel],
                p_idle[sel],
            )
            start = end
        if np.isnan(o_lat[i]):
            continue
        live = idle & (seen >= o_time[i] - ttl_us)
        dist = haversine_km(o_lat[i], o_lon[i], lat[live], lon[live])
        near[i], nearest[i] = proximity_of(dist)
    return near, nearest


def proximity_of(distances_km: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Idle couriers within :data:`NEAR_RADIUS_KM` and the nearest within
    :data:`NEAREST_MAX_KM` (NaN when none), from live idle couriers' distances."""
    near = float(np.count_nonzero(distances_km <= NEAR_RADIUS_KM))
    reachable = distances_km[distances_km <= NEAREST_MAX_KM]
    return near, float(reachable.min()) if reachable.size else math.nan


CELL_DEG = NEAREST_MAX_KM / 111.0
"""Grid cell side in degrees: a little over :data:`NEAREST_MAX_KM` of latitude."""
_PING_TTL_US = int(PING_TTL.total_seconds() * 1e6)

Position = tuple[float, float, int]
"""``(lat, lon, last ping µs)`` of an idle courier."""


def cell_of(lat: float, lon: float) -> str:
    """The grid cell holding a point."""
    return f"{math.floor(lat / CELL_DEG)}:{math.floor(lon / CELL_DEG)}"


def cells_around(lat: float, lon: float) -> list[str]:
    """Cells covering every point within :data:`NEAREST_MAX_KM` of ``(lat, lon)``."""
    row = math.floor(lat / CELL_DEG)
    widest = math.cos(math.radians(min(abs(lat) + CELL_DEG, 89.0)))
    span = NEAREST_MAX_KM / (111.0 * widest)
    first, last = math.floor((lon - span) / CELL_DEG), math.floor((lon + span) / CELL_DEG)
    return [f"{r}:{c}" for r in (row - 1, row, row + 1) for c in range(first, last + 1)]


class CourierCells:
    """Online twin of :func:`_sweep`: each courier's last ping, and the idle ones by cell.

    A ping older than the courier's last one changes nothing, so applying pings
    again (at-least-once delivery) leaves the same state.
    """

    def __init__(self) -> None:
        self.last: dict[str, tuple[int, str | None]] = {}  # courier → (ping µs, idle cell)
        self.cells: dict[str, dict[str, Position]] = {}

    def ping(self, courier_id: str, lat: float, lon: float, idle: bool, time_us: int) -> set[str]:
        """Apply one ping; returns the cells whose idle couriers changed."""
        seen, old_cell = self.last.get(courier_id, (-1, None))
        if time_us < seen:
            return set()
        changed: set[str] = set()
        if old_cell is not None:
            del self.cells[old_cell][courier_id]
            changed.add(old_cell)
        new_cell = cell_of(lat, lon) if idle else None
        if new_cell is not None:
            self.cells.setdefault(new_cell, {})[courier_id] = (lat, lon, time_us)
            changed.add(new_cell)
        self.last[courier_id] = (time_us, new_cell)
        return changed

    def packed(self, cell: str) -> str:
        """The idle couriers of ``cell`` as stored online (JSON of ``[id, lat, lon, µs]``)."""
        members = self.cells.get(cell, {})
        return msgspec.json.encode([[c, *p] for c, p in members.items()]).decode()

    def to_state(self) -> dict[str, list[object]]:
        """A msgpack-ready snapshot (for checkpoints)."""
        return {
            c: [t, cell, *self.cells[cell][c]] if cell else [t]
            for c, (t, cell) in self.last.items()
        }

    @classmethod
    def from_state(cls, state: dict[str, list[Any]]) -> CourierCells:
        """The cells :meth:`to_state` described."""
        cells = cls()
        for courier_id, (time_us, *rest) in state.items():
            cell = rest[0] if rest else None
            cells.last[courier_id] = (time_us, cell)
            if cell is not None:
                cells.cells.setdefault(cell, {})[courier_id] = (rest[1], rest[2], rest[3])
        return cells


def proximity_online(
    lat: float, lon: float, at_us: int, packed_cells: list[str | None]
) -> tuple[float, float | None]:
    """Online twin of the sweep's read: near count and nearest km at ``at_us`` from the
    packed cells around ``(lat, lon)`` (see :func:`cells_around`)."""
    positions = [
        p
        for packed in packed_cells
        if packed
        for p in msgspec.json.decode(packed)
        if p[3] >= at_us - _PING_TTL_US
    ]
    distances = haversine_km(
        lat, lon, np.array([p[1] for p in positions]), np.array([p[2] for p in positions])
    )
    near, nearest = proximity_of(np.atleast_1d(distances))
    return near, None if math.isnan(nearest) else nearest
