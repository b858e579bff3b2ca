"""Market snapshots: supply and demand of each market at regular instants."""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from arrive.ingest.simulator.demand import Orders
from arrive.ingest.simulator.engine import Outcomes
from arrive.ingest.simulator.world import World

_F = NDArray[np.float64]
_I = NDArray[np.int64]


@dataclasses.dataclass(frozen=True)
class Snapshots:
    """Counts per market and instant, sorted by market then time."""

    market: _I
    time_s: _F
    couriers_on_shift: _I
    couriers_busy: _I
    outstanding_orders: _I


def market_snapshots(
    world: World, orders: Orders, out: Outcomes, interval_s: float, end_s: float
) -> Snapshots:
    """Snapshots every ``interval_s`` from 0 to ``end_s`` in every market.

    A courier is on shift from its start until it goes offline, busy from its
    assignment until it is free again; an order is outstanding from its creation
    until it is delivered or cancelled.
    """
    times = np.arange(0.0, end_s + 1e-9, interval_s)
    shifts = world.shifts
    assigned = out.shift >= 0
    terminal = np.where(np.isnan(out.delivered_s), out.cancelled_s, out.delivered_s)
    parts = []
    for m in range(len(world.markets.ids)):
        own_shift, own_order = shifts.market == m, orders.market == m
        busy = assigned & own_order
        parts.append(
            (
                np.full(len(times), m),
                times,
                _covering(shifts.start_s[own_shift], out.shift_offline_s[own_shift], times),
                _covering(out.assigned_s[busy], out.release_s[busy], times),
                _covering(orders.created_s[own_order], terminal[own_order], times),
            )
        )
    columns = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return Snapshots(
        columns[0].astype(np.int64), columns[1], *(c.astype(np.int64) for c in columns[2:])
    )


def _covering(begin_s: _F, end_s: _F, times: _F) -> _I:
    """How many intervals [begin, end) contain each instant."""
    started = np.searchsorted(np.sort(begin_s), times, side="right")
    ended = np.searchsorted(np.sort(end_s), times, side="right")
    return np.asarray(started - ended, dtype=np.int64)
