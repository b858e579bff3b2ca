"""Courier movements and the location pings they produce.

Each shift is tiled, from its start to the moment its courier goes offline,
with straight-line segments at constant speed: idle drift towards the base
(then waiting there), riding to a store, waiting at the store, riding to the
drop, handing over. Pings sample these segments every ``interval_s`` (from a
random phase per shift) and mark every status change: on shift (idle),
assigned (busy), free again (idle), off shift (offline).
"""

from __future__ import annotations

import dataclasses
from typing import Final

import numpy as np
from numpy.typing import NDArray

from arrive.ingest.simulator.engine import Outcomes
from arrive.ingest.simulator.fleet import DRIFT_KMH
from arrive.ingest.simulator.world import World, flat_km

_F = NDArray[np.float64]
_I = NDArray[np.int64]
_B = NDArray[np.bool_]

STATUSES: Final = ("idle", "busy", "offline")
IDLE, BUSY, OFFLINE = 0, 1, 2
_KEY_SPAN: Final = 1e8  # seconds: longer than any simulated period


@dataclasses.dataclass(frozen=True)
class Segments:
    """Straight-line pieces of every courier's track, sorted by shift then start."""

    shift: _I
    t0: _F
    t1: _F
    lat0: _F
    lon0: _F
    lat1: _F
    lon1: _F
    busy: _B

    def locate(self, shift: _I, time_s: _F) -> tuple[_F, _F, _B]:
        """Position and busyness of ``shift``'s courier at ``time_s`` (within its shift)."""
        keys = self.shift * _KEY_SPAN + self.t0
        index = np.searchsorted(keys, shift * _KEY_SPAN + time_s, side="right") - 1
        index = np.maximum(index, 0)
        span = self.t1[index] - self.t0[index]
        elapsed = time_s - self.t0[index]
        w = np.clip(np.divide(elapsed, span, out=np.zeros_like(span), where=span > 0), 0.0, 1.0)
        lat = self.lat0[index] + (self.lat1[index] - self.lat0[index]) * w
        lon = self.lon0[index] + (self.lon1[index] - self.lon0[index]) * w
        return lat, lon, self.busy[index]


@dataclasses.dataclass(frozen=True)
class Pings:
    """Courier pings in time order; ``status`` indexes :data:`STATUSES`."""

    shift: _I
    time_s: _F
    lat: _F
    lon: _F
    status: _I


@dataclasses.dataclass(frozen=True)
class _Jobs:
    """Orders a courier was assigned to, sorted by shift then assignment."""

    order: _I
    shift: _I
    prev_s: _F  # when the courier became free before this job
    prev_lat: _F
    prev_lon: _F
    next_s: _F  # assignment of the same shift's next job (inf: none)


def courier_segments(world: World, store_lat: _F, store_lon: _F, out: Outcomes) -> Segments:
    """Tile every shift with movement segments.

    Args:
        world: the simulated world.
        store_lat: latitude of each order's store (aligned with the orders).
        store_lon: longitude of each order's store.
        out: the engine's outcomes.
    """
    jobs = _jobs(world, out)
    final_s, final_lat, final_lon = _final_idle_start(world, jobs, out)
    shifts = np.arange(len(world.shifts.start_s))
    pieces = [
        _idle(
            world, jobs.shift, jobs.prev_s, jobs.prev_lat, jobs.prev_lon, out.assigned_s[jobs.order]
        ),
        _idle(world, shifts, final_s, final_lat, final_lon, out.shift_offline_s),
        _busy(jobs, store_lat, store_lon, out),
    ]
    merged = {f: np.concatenate([getattr(p, f) for p in pieces]) for f in _SEGMENT_FIELDS}
    keep = merged["t1"] > merged["t0"]
    order = np.lexsort((merged["t0"][keep], merged["shift"][keep]))
    return Segments(**{f: v[keep][order] for f, v in merged.items()})


_SEGMENT_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Segments))


def _jobs(world: World, out: Outcomes) -> _Jobs:
    assigned = np.flatnonzero(out.shift >= 0)
    order = assigned[np.lexsort((out.assigned_s[assigned], out.shift[assigned]))]
    shift = out.shift[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = shift[1:] != shift[:-1]
    previous = np.concatenate([[0], order[:-1]])
    shifts = world.shifts
    prev_s = np.where(first, shifts.start_s[shift], out.release_s[previous])
    prev_lat = np.where(first, shifts.start_lat[shift], out.release_lat[previous])
    prev_lon = np.where(first, shifts.start_lon[shift], out.release_lon[previous])
    following = np.concatenate([order[1:], [0]])
    has_next = np.concatenate([~first[1:], [False]])
    next_s = np.where(has_next, out.assigned_s[following], np.inf)
    return _Jobs(order, shift, prev_s, prev_lat, prev_lon, next_s)


def _final_idle_start(world: World, jobs: _Jobs, out: Outcomes) -> tuple[_F, _F, _F]:
    shifts = world.shifts
    time_s, lat, lon = shifts.start_s.copy(), shifts.start_lat.copy(), shifts.start_lon.copy()
    last = np.isinf(jobs.next_s)
    shift, order = jobs.shift[last], jobs.order[last]
    time_s[shift], lat[shift], lon[shift] = (
        out.release_s[order], out.release_lat[order], out.release_lon[order],
    )  # fmt: skip
    return time_s, lat, lon


def _idle(world: World, shift: _I, from_s: _F, lat: _F, lon: _F, to_s: _F) -> Segments:
    """Drift from (lat, lon) at from_s towards the base, then wait there until to_s."""
    shifts = world.shifts
    base_lat, base_lon = shifts.base_lat[shift], shifts.base_lon[shift]
    kx = world.markets.km_per_deg_lon[shifts.market[shift]]
    distance = flat_km(lat, lon, base_lat, base_lon, kx)
    reach_s = from_s + distance / DRIFT_KMH * 3600.0
    stop_s = np.minimum(reach_s, to_s)
    w = np.divide(
        stop_s - from_s, reach_s - from_s, out=np.ones_like(from_s), where=reach_s > from_s
    )
    mid_lat, mid_lon = lat + (base_lat - lat) * w, lon + (base_lon - lon) * w
    no = np.zeros(2 * len(shift), dtype=bool)
    return Segments(
        shift=np.concatenate([shift, shift]),
        t0=np.concatenate([from_s, reach_s]),
        t1=np.concatenate([stop_s, np.maximum(to_s, reach_s)]),
        lat0=np.concatenate([lat, base_lat]),
        lon0=np.concatenate([lon, base_lon]),
        lat1=np.concatenate([mid_lat, base_lat]),
        lon1=np.concatenate([mid_lon, base_lon]),
        busy=no,
    )


def _busy(jobs: _Jobs, store_lat: _F, store_lon: _F, out: Outcomes) -> Segments:
    """Ride to the store, wait there, ride to the drop, hand over (cut at a cancellation)."""
    o = jobs.order
    release, at_store = out.release_s[o], out.at_store_s[o]
    s_lat, s_lon = store_lat[o], store_lon[o]
    r_lat, r_lon = out.release_lat[o], out.release_lon[o]
    d_lat, d_lon = r_lat, r_lon  # for delivered orders the release point is the drop
    delivered = ~np.isnan(out.delivered_s[o])
    early = release < at_store
    waited_until = np.where(delivered, out.picked_up_s[o], release)
    nan = np.full(len(o), np.nan)
    parts = (
        (out.assigned_s[o], np.minimum(at_store, release), out.go_lat[o], out.go_lon[o],
         np.where(early, r_lat, s_lat), np.where(early, r_lon, s_lon)),
        (at_store, np.where(early, nan, waited_until), s_lat, s_lon, s_lat, s_lon),
        (out.picked_up_s[o], out.at_drop_s[o], s_lat, s_lon, d_lat, d_lon),
        (out.at_drop_s[o], out.delivered_s[o], d_lat, d_lon, d_lat, d_lon),
    )  # fmt: skip
    t0, t1, lat0, lon0, lat1, lon1 = (np.concatenate(c) for c in zip(*parts, strict=True))
    busy = np.ones(4 * len(o), dtype=bool)
    return Segments(np.tile(jobs.shift, 4), t0, t1, lat0, lon0, lat1, lon1, busy)


def courier_pings(
    world: World, segments: Segments, out: Outcomes, interval_s: float, rng: np.random.Generator
) -> Pings:
    """Periodic and status-change pings of every shift, in time order."""
    periodic = _periodic(world, segments, out, interval_s, rng)
    changes = _status_changes(world, segments, out)
    merged = [np.concatenate(parts) for parts in zip(periodic, changes, strict=True)]
    shift, time_s, lat, lon, status = merged
    order = np.lexsort((status, shift, time_s))
    return Pings(shift[order], time_s[order], lat[order], lon[order], status[order])


_PingColumns = tuple[_I, _F, _F, _F, _I]


def _periodic(
    world: World, segments: Segments, out: Outcomes, interval_s: float, rng: np.random.Generator
) -> _PingColumns:
    first_s = world.shifts.start_s + rng.uniform(0.0, interval_s, len(world.shifts.start_s))
    count = np.maximum(0, np.ceil((out.shift_offline_s - first_s) / interval_s)).astype(np.int64)
    shift = np.repeat(np.arange(len(count)), count)
    step = np.arange(len(shift)) - np.repeat(np.cumsum(count) - count, count)
    time_s = first_s[shift] + step * interval_s
    lat, lon, busy = segments.locate(shift, time_s)
    return shift, time_s, lat, lon, busy.astype(np.int64)


def _status_changes(world: World, segments: Segments, out: Outcomes) -> _PingColumns:
    shifts = world.shifts
    every = np.arange(len(shifts.start_s))
    jobs = _jobs(world, out)
    o = jobs.order
    release = out.release_s[o]
    # free again while on shift, unless the next order starts at that very instant
    freed = (release < shifts.end_s[jobs.shift]) & (jobs.next_s > release)
    off_lat, off_lon, _ = segments.locate(every, out.shift_offline_s)
    n_jobs, n_freed = len(o), int(freed.sum())
    return (
        np.concatenate([every, jobs.shift, jobs.shift[freed], every]),
        np.concatenate([shifts.start_s, out.assigned_s[o], release[freed], out.shift_offline_s]),
        np.concatenate([shifts.start_lat, out.go_lat[o], out.release_lat[o][freed], off_lat]),
        np.concatenate([shifts.start_lon, out.go_lon[o], out.release_lon[o][freed], off_lon]),
        np.concatenate([
            np.full(len(every), IDLE), np.full(n_jobs, BUSY), np.full(n_freed, IDLE),
            np.full(len(every), OFFLINE),
        ]),
    )  # fmt: skip
