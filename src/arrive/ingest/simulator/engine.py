"""The time-ordered simulation: orders, one after another, meet kitchens and couriers.

Orders are taken in creation order. For each, the engine looks up the state the
ground truth (:mod:`.truth`) needs and nothing else:

* the store's open orders: a heap of the ready times of the orders it is preparing;
* the market's fleet (:mod:`.fleet`): the order goes to the on-shift courier that
  can reach the store first, idle or not; a busy courier is assigned when it has
  delivered.

Then it evaluates the order's timeline, cancels it if the customer gives up,
and commits the result: the kitchen's queue and the courier's next free time
and position. The loop is inherently sequential; its body is a handful of
NumPy operations over the couriers on shift in one market.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from arrive.ingest.simulator import truth
from arrive.ingest.simulator.demand import Orders
from arrive.ingest.simulator.fleet import Choice, MarketFleet
from arrive.ingest.simulator.inputs import OrderInputs
from arrive.ingest.simulator.world import World, from_local_km, to_local_km

_F = NDArray[np.float64]
_I = NDArray[np.int64]
_C = NDArray[np.complex128]

_PROGRESS_EVERY: Final = 4096

ProgressFn = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class Outcomes:
    """What happened to each order (aligned with :class:`~.demand.Orders`).

    Times are seconds since the start; NaN where the step did not happen.
    ``shift`` is -1 when no courier was assigned before the order ended.
    ``go_*`` is where the courier set off from; ``release_*`` when and where it
    was free again (at the drop, or where the cancellation found it).
    """

    shift: _I
    confirmed_s: _F
    ready_s: _F
    assigned_s: _F
    at_store_s: _F
    picked_up_s: _F
    at_drop_s: _F
    delivered_s: _F
    cancelled_s: _F
    go_lat: _F
    go_lon: _F
    release_s: _F
    release_lat: _F
    release_lon: _F
    prep_s: _F
    open_orders: _I
    nearest_idle_km: _F
    idle_couriers: _I
    shift_offline_s: _F  # per shift: when its courier went offline


class _Row(NamedTuple):
    created_s: float
    market: int
    store: int
    store_xy: complex
    drop_xy: complex
    drop_km: float
    speed: float
    prep_base_s: float
    confirm_s: float
    dispatch_s: float
    handover_s: float
    dropoff_s: float
    patience_s: float
    to_store_noise: float
    to_drop_noise: float


_INT_FIELDS: Final = frozenset({"shift", "open_orders", "idle_couriers"})
_RECORDED: Final = (
    "shift", "confirmed_s", "ready_s", "assigned_s", "at_store_s", "picked_up_s", "at_drop_s",
    "delivered_s", "cancelled_s", "release_s", "prep_s", "open_orders", "nearest_idle_km",
    "idle_couriers",
)  # fmt: skip


class _Record:
    """Preallocated per-order results; positions as local complex kilometres."""

    def __init__(self, n: int) -> None:
        self.a = {k: np.full(n, -1 if k in _INT_FIELDS else np.nan) for k in _RECORDED}
        self.go_xy = np.full(n, complex(np.nan, np.nan))
        self.release_xy = np.full(n, complex(np.nan, np.nan))

    def outcomes(self, world: World, orders: Orders, offline_s: _F) -> Outcomes:
        values: dict[str, Any] = {
            k: v.astype(np.int64) if k in _INT_FIELDS else v for k, v in self.a.items()
        }
        go_lat, go_lon = from_local_km(world.markets, orders.market, self.go_xy)
        release_lat, release_lon = from_local_km(world.markets, orders.market, self.release_xy)
        return Outcomes(
            **values,
            go_lat=go_lat,
            go_lon=go_lon,
            release_lat=release_lat,
            release_lon=release_lon,
            shift_offline_s=offline_s,
        )


def run_engine(
    world: World, orders: Orders, inputs: OrderInputs, progress: ProgressFn | None = None
) -> Outcomes:
    """Simulate every order in creation order (see the module docstring)."""
    fleets = _fleets(world)
    kitchens: list[list[float]] = [[] for _ in world.stores.ids]
    record = _Record(len(orders))
    for i, row in enumerate(zip(*_columns(world, orders, inputs), strict=True)):
        _simulate_order(i, _Row(*row), fleets[row[1]], kitchens, record)
        if progress is not None and (i + 1) % _PROGRESS_EVERY == 0:
            progress(i + 1, len(orders))
    if progress is not None:
        progress(len(orders), len(orders))
    last_free_s = np.empty(len(world.shifts.start_s))
    for fleet in fleets:
        last_free_s[fleet.shift] = fleet.final_free_s()
    return record.outcomes(world, orders, np.maximum(world.shifts.end_s, last_free_s))


def _fleets(world: World) -> list[MarketFleet]:
    shifts, couriers, markets = world.shifts, world.couriers, world.markets
    vehicle = couriers.vehicle[shifts.courier]
    kmh = np.array(list(truth.VEHICLE_KMH.values()))[vehicle]
    bicycle = vehicle == truth.VEHICLES.index("bicycle")
    max_drop_km = np.where(bicycle, truth.BICYCLE_MAX_DROP_KM, np.inf)
    start_xy = to_local_km(markets, shifts.market, shifts.start_lat, shifts.start_lon)
    base_xy = to_local_km(markets, shifts.market, shifts.base_lat, shifts.base_lon)
    fleets = []
    for m in range(len(markets.ids)):
        own = np.flatnonzero(shifts.market == m)
        times = (shifts.start_s[own], shifts.end_s[own])
        fleets.append(
            MarketFleet(own, *times, kmh[own], max_drop_km[own], start_xy[own], base_xy[own])
        )
    return fleets


def _columns(world: World, orders: Orders, inputs: OrderInputs) -> list[list[float]]:
    stores, markets = world.stores, world.markets
    store_xy = to_local_km(
        markets, orders.market, stores.lat[orders.store], stores.lon[orders.store]
    )
    drop_xy = to_local_km(markets, orders.market, orders.drop_lat, orders.drop_lon)
    arrays = (
        orders.created_s, orders.market, orders.store, store_xy, drop_xy, orders.drop_km,
        inputs.speed_share, inputs.prep_base_s, inputs.confirm_s, inputs.dispatch_s,
        inputs.handover_s, inputs.dropoff_s, inputs.patience_s, inputs.to_store_noise,
        inputs.to_drop_noise,
    )  # fmt: skip
    return [a.tolist() for a in arrays]


def _simulate_order(
    i: int, row: _Row, fleet: MarketFleet, kitchens: list[list[float]], record: _Record
) -> None:
    kitchen = kitchens[row.store]
    while kitchen and kitchen[0] <= row.created_s:
        heapq.heappop(kitchen)
    open_orders = len(kitchen)
    prep = truth.prep_s(row.prep_base_s, open_orders)
    go_s = row.created_s + row.confirm_s + row.dispatch_s
    s_per_km = truth.travel_s(1.0, 1.0, row.speed)  # travel_s is linear in km and 1/kmh
    choice = fleet.choose(row.created_s, go_s, row.store_xy, s_per_km, row.drop_km)
    to_store = truth.travel_s(choice.distance_km, choice.kmh, row.speed, row.to_store_noise)
    to_drop = truth.travel_s(row.drop_km, choice.kmh, row.speed, row.to_drop_noise)
    order = truth.timeline(
        row.created_s, row.confirm_s, prep, row.dispatch_s, choice.free_s,
        to_store, row.handover_s, to_drop, row.dropoff_s,
    )  # fmt: skip
    cancelled = truth.is_cancelled(order, row.patience_s)
    end_s = row.created_s + row.patience_s if cancelled else order.delivered_s
    heapq.heappush(kitchen, min(order.ready_s, end_s))
    _write(record, i, row, order, open_orders, prep, choice, end_s)
    if choice.shift >= 0 and order.assigned_s < end_s:
        position = _release_point(row, order, choice, end_s, cancelled)
        fleet.release(choice.slot, end_s, position)
        record.a["release_s"][i], record.release_xy[i] = end_s, position


def _release_point(
    row: _Row, order: truth.Timeline, choice: Choice, end_s: float, cancelled: bool
) -> complex:
    """Where the courier is when the order ends: at the drop, or on its way to the store."""
    if not cancelled:
        return row.drop_xy
    ride_s = order.at_store_s - order.assigned_s
    done = 1.0 if ride_s <= 0.0 else min(1.0, (end_s - order.assigned_s) / ride_s)
    return choice.position + (row.store_xy - choice.position) * done


def _write(
    record: _Record,
    i: int,
    row: _Row,
    order: truth.Timeline,
    open_orders: int,
    prep: float,
    choice: Choice,
    end_s: float,
) -> None:
    a = record.a
    a["confirmed_s"][i], a["prep_s"][i], a["open_orders"][i] = order.confirmed_s, prep, open_orders
    a["nearest_idle_km"][i], a["idle_couriers"][i] = choice.nearest_idle_km, choice.idle
    if order.ready_s < end_s:
        a["ready_s"][i] = order.ready_s
    if choice.shift >= 0 and order.assigned_s < end_s:
        a["shift"][i], a["assigned_s"][i] = choice.shift, order.assigned_s
        a["at_store_s"][i], record.go_xy[i] = order.at_store_s, choice.position
    if end_s < order.delivered_s:
        a["cancelled_s"][i] = end_s
        return
    a["picked_up_s"][i], a["delivered_s"][i] = order.picked_up_s, order.delivered_s
    a["at_drop_s"][i] = order.delivered_s - row.dropoff_s
