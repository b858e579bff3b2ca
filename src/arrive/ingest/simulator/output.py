"""The simulation written as data: the orders table, the event log and the hidden truth.

Event ids are deterministic: ``o0000042-created`` … ``o0000042-delivered`` for
an order's lifecycle, ``p00000001`` … for pings (numbered in time order),
``w-<market>-000001`` for weather observations, ``ms-<market>-000001`` for
market snapshots and ``o0000042-provider`` for an order's travel-time observation.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from arrive.datadir import conform_orders
from arrive.ingest.simulator import truth, vendor
from arrive.ingest.simulator.demand import Orders
from arrive.ingest.simulator.engine import Outcomes
from arrive.ingest.simulator.inputs import OrderInputs
from arrive.ingest.simulator.snapshots import Snapshots
from arrive.ingest.simulator.tracks import STATUSES, Pings
from arrive.ingest.simulator.weather import WeatherEpisodes
from arrive.ingest.simulator.world import World
from arrive.schema.events import SCHEMA_VERSION
from arrive.schema.frame import UTC_TIME, conform

if TYPE_CHECKING:
    from arrive.ingest.simulator.run import Environment

_F = NDArray[np.float64]
COORD_DECIMALS: Final = 6

#: (event type, id suffix, time column) of each lifecycle step
_LIFECYCLE: Final = (
    ("order_created", "created", "created_at"),
    ("order_confirmed", "confirmed", "confirmed_at"),
    ("courier_assigned", "assigned", "assigned_at"),
    ("food_ready", "ready", "ready_at"),
    ("picked_up", "picked", "picked_up_at"),
    ("delivered", "delivered", "delivered_at"),
    ("cancelled", "cancelled", "cancelled_at"),
)
#: event-log columns each lifecycle event carries, beyond id, type and time
_LIFECYCLE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "order_created": (
        "order_id", "store_id", "market_id", "pickup_lat", "pickup_lon", "drop_lat", "drop_lon",
        "items", "distinct_items", "subtotal", "store_category", "attributes",
    ),
    "order_confirmed": ("order_id", "store_id"),
    "courier_assigned": ("order_id", "courier_id", "vehicle", "rating"),
    "food_ready": ("order_id", "store_id"),
    "picked_up": ("order_id", "courier_id"),
    "delivered": ("order_id", "courier_id"),
    "cancelled": ("order_id", "reason"),
}  # fmt: skip
CANCEL_REASON: Final = "customer_late"
QUOTE_LEAD_S: Final = 1.0
"""How long before an order's creation its ETA was quoted (and the vendor asked)."""


@dataclasses.dataclass(frozen=True)
class Timestamps:
    """Turns simulation seconds into UTC timestamps (microseconds)."""

    start: datetime

    def column(self, seconds: _F, name: str) -> pl.Series:
        """Timestamps of ``seconds`` since the start; NaN becomes null."""
        start_us = int(self.start.timestamp() * 1_000_000)
        values = pl.Series(name, seconds, dtype=pl.Float64).fill_nan(None)
        return ((values * 1e6).round().cast(pl.Int64) + start_us).cast(UTC_TIME)


def order_frame(
    world: World, orders: Orders, inputs: OrderInputs, out: Outcomes, stamps: Timestamps
) -> pl.DataFrame:
    """One wide row per order: what the events and the orders table are cut from."""
    stores, couriers = world.stores, world.couriers
    assigned = out.shift >= 0
    courier = np.where(assigned, world.shifts.courier[np.maximum(out.shift, 0)], -1)
    times = {
        "created_at": orders.created_s,
        "confirmed_at": out.confirmed_s,
        "assigned_at": out.assigned_s,
        "ready_at": out.ready_s,
        "picked_up_at": out.picked_up_s,
        "delivered_at": out.delivered_s,
        "cancelled_at": out.cancelled_s,
    }
    frame = pl.DataFrame(
        {
            "order_id": _ids("o", np.arange(1, len(orders) + 1), 7),
            "status": np.where(np.isnan(out.delivered_s), "cancelled", "delivered"),
            "store_id": np.array(stores.ids)[orders.store],
            "market_id": np.array(world.markets.ids)[orders.market],
            "store_category": np.array(truth.CATEGORIES)[stores.category[orders.store]],
            "courier_id": _nullable(np.array(couriers.ids), courier),
            "vehicle": _nullable(np.array(truth.VEHICLES), couriers.vehicle[courier], assigned),
            "rating": np.where(assigned, couriers.rating[courier], np.nan),
            "pickup_lat": np.round(stores.lat[orders.store], COORD_DECIMALS),
            "pickup_lon": np.round(stores.lon[orders.store], COORD_DECIMALS),
            "drop_lat": np.round(orders.drop_lat, COORD_DECIMALS),
            "drop_lon": np.round(orders.drop_lon, COORD_DECIMALS),
            "items": orders.items,
            "distinct_items": orders.distinct_items,
            "subtotal": orders.subtotal,
            "traffic": np.array(truth.TRAFFIC_LEVELS)[truth.traffic_level(inputs.congestion)],
        }
    ).with_columns(pl.col("rating").fill_nan(None))
    return frame.with_columns(stamps.column(v, k) for k, v in times.items())


def orders_table(frame: pl.DataFrame) -> pl.DataFrame:
    """``orders.parquet``: canonical columns, then ``traffic`` (the OrderCreated attribute)."""
    duration = (pl.col("delivered_at") - pl.col("created_at")).dt.total_microseconds() / 1e6
    table = frame.with_columns(duration_s=duration, source_line=pl.lit(None, pl.Int64))
    return conform_orders(table.drop("vehicle", "rating", "confirmed_at", "assigned_at",
                                     "ready_at", "picked_up_at", "cancelled_at"))  # fmt: skip


def lifecycle_events(frame: pl.DataFrame) -> pl.DataFrame:
    """Every order's lifecycle events (unsorted)."""
    frame = frame.with_columns(
        attributes=pl.concat_str(pl.lit('{"traffic":"'), pl.col("traffic"), pl.lit('"}')),
        reason=pl.lit(CANCEL_REASON),
    )
    parts = []
    for kind, suffix, time_column in _LIFECYCLE:
        rows = frame.filter(pl.col(time_column).is_not_null())
        common = [
            (pl.col("order_id") + f"-{suffix}").alias("event_id"),
            pl.lit(kind).alias("type"),
            pl.col(time_column).alias("event_time"),
        ]
        parts.append(rows.select(*common, *_LIFECYCLE_COLUMNS[kind]))
    return pl.concat(parts, how="diagonal_relaxed")


def provider_events(
    env: Environment, frame: pl.DataFrame, created_s: _F, stamps: Timestamps
) -> pl.DataFrame:
    """What the simulated vendor answered for each order's store→drop leg when its ETA was
    quoted, :data:`QUOTE_LEAD_S` before its creation (``travel_time_observation`` events)."""
    asked_s = created_s - QUOTE_LEAD_S
    legs = tuple(frame.get_column(c).to_numpy() for c in ("pickup_lat", "pickup_lon",
                                                          "drop_lat", "drop_lon"))  # fmt: skip
    epoch_s = stamps.start.timestamp() + asked_s
    seconds, metres = vendor.leg_seconds(env, legs, asked_s, epoch_s)  # type: ignore[arg-type]
    return frame.select(
        event_id=pl.col("order_id") + "-provider",
        type=pl.lit("travel_time_observation"),
        event_time=stamps.column(asked_s, "event_time"),
        order_id="order_id",
        provider=pl.lit("simulated-vendor"),
        travel_time_s=pl.Series(seconds),
        origin_lat="pickup_lat",
        origin_lon="pickup_lon",
        destination_lat="drop_lat",
        destination_lon="drop_lon",
        distance_m=pl.Series(metres),
    )


def ping_events(world: World, pings: Pings, stamps: Timestamps) -> pl.DataFrame:
    """Courier pings, numbered in time order."""
    courier = world.shifts.courier[pings.shift]
    return pl.DataFrame(
        {
            "event_id": _ids("p", np.arange(1, len(pings.time_s) + 1), 8),
            "type": "courier_ping",
            "event_time": stamps.column(pings.time_s, "event_time"),
            "courier_id": np.array(world.couriers.ids)[courier],
            "lat": np.round(pings.lat, COORD_DECIMALS),
            "lon": np.round(pings.lon, COORD_DECIMALS),
            "status": np.array(STATUSES)[pings.status],
            "market_id": np.array(world.markets.ids)[world.shifts.market[pings.shift]],
        }
    )


def weather_events(
    world: World, weather: WeatherEpisodes, end_s: float, stamps: Timestamps
) -> pl.DataFrame:
    """A weather observation per market every hour and whenever the condition changes."""
    hours = np.arange(0.0, end_s + 1e-9, 3600.0)
    markets = np.arange(len(world.markets.ids))
    changes = weather.start_s <= end_s
    market = np.concatenate([np.repeat(markets, len(hours)), weather.market[changes]])
    time_s = np.concatenate([np.tile(hours, len(markets)), weather.start_s[changes]])
    keys = np.unique(np.stack([market.astype(np.float64), time_s]), axis=1)
    market, time_s = keys[0].astype(np.int64), keys[1]
    condition, precipitation = weather.at(market, time_s)
    temperature = np.round(weather.temperature_c(market, time_s, condition), 1)
    return pl.DataFrame(
        {
            "event_id": _market_ids("w", world, market),
            "type": "weather_observation",
            "event_time": stamps.column(time_s, "event_time"),
            "market_id": np.array(world.markets.ids)[market],
            "condition": np.array(truth.WEATHER_CONDITIONS)[condition],
            "temperature_c": temperature,
            "precipitation_mm": precipitation,
        }
    )


def snapshot_events(world: World, snapshots: Snapshots, stamps: Timestamps) -> pl.DataFrame:
    """Market snapshots as events."""
    return pl.DataFrame(
        {
            "event_id": _market_ids("ms", world, snapshots.market),
            "type": "market_snapshot",
            "event_time": stamps.column(snapshots.time_s, "event_time"),
            "market_id": np.array(world.markets.ids)[snapshots.market],
            "couriers_on_shift": snapshots.couriers_on_shift,
            "couriers_busy": snapshots.couriers_busy,
            "outstanding_orders": snapshots.outstanding_orders,
        }
    )


def event_log(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """All events in the canonical columnar form, sorted by time then id."""
    version = pl.lit(SCHEMA_VERSION, pl.Int16).alias("schema_version")
    return conform(pl.concat(parts, how="diagonal_relaxed").with_columns(version))


def _ids(prefix: str, numbers: NDArray[np.int64], width: int) -> pl.Series:
    digits = pl.Series(numbers, dtype=pl.Int64).cast(pl.String).str.zfill(width)
    return prefix + digits


def _market_ids(prefix: str, world: World, market: NDArray[np.int64]) -> pl.Series:
    """``prefix-<market>-<n>`` with n counting within each market (input is market-sorted)."""
    first = np.searchsorted(market, market, side="left")
    number = np.arange(len(market)) - first + 1
    names = pl.Series(np.array(world.markets.ids)[market])
    return f"{prefix}-" + names + "-" + _ids("", number, 6)


def _nullable(
    labels: NDArray[np.str_], index: NDArray[np.int64], present: NDArray[np.bool_] | None = None
) -> pl.Series:
    present = index >= 0 if present is None else present
    values = pl.Series(labels[np.maximum(index, 0)])
    return pl.select(pl.when(pl.Series(present)).then(values)).to_series()
