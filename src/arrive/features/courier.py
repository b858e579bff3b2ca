"""Couriers: the assigned courier's recent work when the order names one at
creation, and courier proximity — idle couriers near the pickup point and the
distance to the nearest — from location pings before ``t``."""

from __future__ import annotations

import itertools
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
_PING_TTL_US = int(PING_TTL.total_seconds() * 1e6)
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
    """The courier state strictly before each order's creation, as the online update
    (:class:`CourierCells`) would hold it after replaying the pings in time order."""
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


_PAIRS_PER_CHUNK = 2_000_000
"""(order, ping) pairs looked at per step of :func:`_sweep` (bounds its memory)."""


def _idle_spans(pings: pl.DataFrame) -> pl.DataFrame:
    """Each idle ping as the span of order times it describes the courier at:
    ``(event µs, until µs]``, until the courier's next ping or the TTL, whichever is first.

    An order at ``t`` sees a courier's last ping strictly before ``t``, if no older than
    :data:`PING_TTL`; a ping that is not the courier's last before ``t`` (a later one
    came, idle or not) describes nothing at ``t``. Pings in time order; of two pings of
    a courier at the same instant, the later in that order is the last.
    """
    at = pl.col("event_time").dt.epoch("us")
    nxt = at.shift(-1).over("courier_id")
    return (
        pings.select(
            at.alias("at"),
            pl.min_horizontal(
                nxt.fill_null(pl.lit(np.iinfo(np.int64).max)), at + _PING_TTL_US
            ).alias("until"),
            "lat",
            "lon",
            idle=(pl.col("status") == "idle").fill_null(False),
        )
        .filter(pl.col("idle") & (pl.col("until") > pl.col("at")))
        .drop("idle")
    )


def _sweep(
    pings: pl.DataFrame, orders: pl.DataFrame
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per order (in ``created_at`` order), idle couriers within :data:`NEAR_RADIUS_KM`
    and the nearest within :data:`NEAREST_MAX_KM`, from ``pings`` (in time order).

    Vectorised: an order's candidates are the idle pings of the TTL before it (sorted by
    time, a contiguous range); those whose span holds the order's time are its couriers.
    """
    spans = _idle_spans(pings)
    p_at, p_until = spans.get_column("at").to_numpy(), spans.get_column("until").to_numpy()
    p_lat, p_lon = spans.get_column("lat").to_numpy(), spans.get_column("lon").to_numpy()
    o_time = orders.get_column("created_at").dt.epoch("us").to_numpy()
    o_lat = orders.get_column("pickup_lat").cast(pl.Float64).to_numpy()
    o_lon = orders.get_column("pickup_lon").cast(pl.Float64).to_numpy()
    first = np.searchsorted(p_at, o_time - _PING_TTL_US, side="left")  # no older than the TTL
    count = np.searchsorted(p_at, o_time, side="left") - first  # strictly before t
    unplaced = np.isnan(o_lat) | np.isnan(o_lon)
    count[unplaced] = 0
    near = np.where(unplaced, np.nan, 0.0)
    nearest = np.full(len(o_time), np.nan)
    for lo, hi in _chunks(count, _PAIRS_PER_CHUNK):
        c = count[lo:hi]
        order = np.repeat(np.arange(lo, hi), c)
        offset = np.arange(order.size) - np.repeat(np.cumsum(c) - c, c)
        ping = np.repeat(first[lo:hi], c) + offset
        live = p_until[ping] >= o_time[order]
        order, ping = order[live], ping[live]
        dist = haversine_km(o_lat[order], o_lon[order], p_lat[ping], p_lon[ping])
        close = dist <= NEAR_RADIUS_KM
        near[lo:hi] += np.bincount(order[close] - lo, minlength=hi - lo)
        reach = dist <= NEAREST_MAX_KM
        _set_minimum(nearest, order[reach], dist[reach])
    return near, nearest


def _set_minimum(
    out: npt.NDArray[np.float64], rows: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> None:
    """``out[r]`` = the least of ``values`` at ``rows == r``, for each row present
    (``rows`` in ascending order)."""
    if rows.size == 0:
        return
    starts = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]]))
    out[rows[starts]] = np.minimum.reduceat(values, starts)


def _chunks(count: npt.NDArray[np.int64], pairs: int) -> list[tuple[int, int]]:
    """Consecutive ranges of orders holding about ``pairs`` candidate pairs each."""
    total = np.cumsum(count)
    cuts = np.searchsorted(total, np.arange(pairs, int(total[-1]) if total.size else 0, pairs))
    bounds = np.unique(np.concatenate([[0], cuts, [len(count)]]))
    return list(itertools.pairwise(bounds.tolist()))


def proximity_of(distances_km: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Idle couriers within :data:`NEAR_RADIUS_KM` and the nearest within
    :data:`NEAREST_MAX_KM` (NaN when none), from live idle couriers' distances."""
    near = float(np.count_nonzero(distances_km <= NEAR_RADIUS_KM))
    reachable = distances_km[distances_km <= NEAREST_MAX_KM]
    return near, float(reachable.min()) if reachable.size else math.nan


CELL_DEG = NEAREST_MAX_KM / 111.0
"""Grid cell side in degrees: a little over :data:`NEAREST_MAX_KM` of latitude."""

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
