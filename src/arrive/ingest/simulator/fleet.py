"""The couriers of one market during the run: where each is, when it is free, who goes.

Positions are complex numbers, ``x + iy`` kilometres east and north of the
market's centre (:func:`.world.to_local_km`), so a distance is one ``abs``.
An idle courier drifts in a straight line towards its base at
:data:`DRIFT_KMH` and waits there.

Scanning every shift of the week for each order would be slow, so the shifts
that can matter in the next :data:`EPOCH_S` seconds are copied into compact
arrays, refreshed as time moves on.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from arrive.ingest.simulator.inputs import MAX_CONFIRM_S, MAX_DISPATCH_S

_F = NDArray[np.float64]
_I = NDArray[np.int64]
_C = NDArray[np.complex128]

DRIFT_KMH: Final = 8.0
"""Speed at which an idle courier drifts towards its base."""
LAST_ORDER_BEFORE_END_S: Final = 600.0
"""A courier takes no order it could not start this long before its shift ends."""
EPOCH_S: Final = 300.0
_LOOKAHEAD_S: Final = EPOCH_S + MAX_CONFIRM_S + MAX_DISPATCH_S
_MIN_DRIFT_KM: Final = 0.01


class Choice(NamedTuple):
    """The courier the dispatcher picked for an order (``shift`` -1: nobody can go)."""

    shift: int
    slot: int
    kmh: float
    free_s: float  # when it can set off for the store
    position: complex  # where it is then
    distance_km: float  # from there to the store
    nearest_idle_km: float  # NaN when no courier is idle
    idle: int


class MarketFleet:
    """Mutable state of the shifts of one market.

    Args:
        shift: global index of each shift (sorted by start).
        start_s: when each shift starts.
        end_s: when each shift ends.
        kmh: free-flow speed of each shift's vehicle.
        max_drop_km: longest drop each shift's vehicle takes.
        start_xy: where each shift starts.
        base_xy: where each shift's courier waits when idle.
    """

    def __init__(
        self, shift: _I, start_s: _F, end_s: _F, kmh: _F, max_drop_km: _F, start_xy: _C, base_xy: _C
    ) -> None:
        self.shift = shift
        self._static = (start_s, end_s - LAST_ORDER_BEFORE_END_S, 1.0 / kmh, max_drop_km, base_xy)
        self.free_s, self.position = start_s.copy(), start_xy.copy()
        self._slots: _I = np.zeros(0, dtype=np.int64)
        self._free: _F = np.zeros(0)
        self._pos: _C = np.zeros(0, dtype=np.complex128)
        self._until = -math.inf

    def choose(
        self, created_s: float, go_s: float, store: complex, s_per_km: float, drop_km: float
    ) -> Choice:
        """The courier that can reach ``store`` first, setting off no earlier than ``go_s``.

        Args:
            created_s: creation of the order (non-decreasing from call to call).
            go_s: earliest dispatch (confirmation + dispatch delay).
            store: the store's position.
            s_per_km: travel seconds per km at 1 km/h in the order's traffic and weather.
            drop_km: distance from the store to the drop (bicycles refuse long ones).
        """
        if created_s >= self._until:
            self._refresh(created_s)
        if not len(self._free):
            return _NOBODY
        free = self._free
        go = np.maximum(free, go_s)
        pos = self._pos + self._to_base * np.minimum((go - free) * self._rate, 1.0)
        km = np.abs(pos - store)
        available = (go < self._last_go) & (self._start <= go_s)
        able = available & (self._max_drop >= drop_km) if drop_km > self._short else available
        arrival = np.where(able, go + km * self._inv_kmh * s_per_km, np.inf)
        best = int(arrival.argmin())
        idle = available & (free <= go_s)
        n_idle = int(np.count_nonzero(idle))
        nearest = float(km.min(where=idle, initial=np.inf)) if n_idle else math.nan
        if not able[best]:
            return _NOBODY._replace(nearest_idle_km=nearest, idle=n_idle)
        shift = int(self.shift[self._slots[best]])
        kmh = 1.0 / float(self._inv_kmh[best])
        return Choice(shift, best, kmh, float(go[best]), complex(pos[best]), float(km[best]),
                      nearest, n_idle)  # fmt: skip

    def release(self, slot: int, time_s: float, position: complex) -> None:
        """The courier picked in ``slot`` is free again from ``time_s`` at ``position``."""
        to_base = complex(self._base[slot]) - position
        self._free[slot], self._pos[slot], self._to_base[slot] = time_s, position, to_base
        self._rate[slot] = DRIFT_KMH / 3600.0 / max(abs(to_base), _MIN_DRIFT_KM)

    def final_free_s(self) -> _F:
        """When each shift's courier was last free (aligned with ``shift``)."""
        self._flush()
        return self.free_s

    def _flush(self) -> None:
        self.free_s[self._slots] = self._free
        self.position[self._slots] = self._pos

    def _refresh(self, now_s: float) -> None:
        """Compact the shifts that may take an order created in the next EPOCH_S."""
        self._flush()
        start_s, last_go_s, inv_kmh, max_drop_km, base_xy = self._static
        slots = np.flatnonzero((start_s <= now_s + _LOOKAHEAD_S) & (last_go_s > now_s))
        self._slots, self._until = slots, now_s + EPOCH_S
        self._free, self._pos = self.free_s[slots], self.position[slots]
        self._start, self._last_go = start_s[slots], last_go_s[slots]
        self._inv_kmh, self._max_drop, self._base = (
            inv_kmh[slots],
            max_drop_km[slots],
            base_xy[slots],
        )
        self._to_base = self._base - self._pos
        self._rate = DRIFT_KMH / 3600.0 / np.maximum(np.abs(self._to_base), _MIN_DRIFT_KM)
        self._short = float(self._max_drop.min(initial=np.inf))


_NOBODY: Final = Choice(-1, -1, 1.0, math.inf, complex(math.nan, math.nan), 0.0, math.nan, 0)
