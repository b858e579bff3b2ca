"""Running a simulation and writing it as a data directory.

Each stage draws from its own random stream, spawned from the run's seed, so a
seed fixes every byte of the output.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import polars as pl

from arrive import __version__, datadir
from arrive.ingest.simulator import output, truth
from arrive.ingest.simulator.config import SimulationConfig
from arrive.ingest.simulator.demand import Orders, generate_orders
from arrive.ingest.simulator.engine import Outcomes, run_engine
from arrive.ingest.simulator.inputs import OrderInputs, order_inputs
from arrive.ingest.simulator.snapshots import market_snapshots
from arrive.ingest.simulator.tracks import courier_pings, courier_segments
from arrive.ingest.simulator.traffic import Traffic, simulate_traffic
from arrive.ingest.simulator.weather import WeatherEpisodes, simulate_weather
from arrive.ingest.simulator.world import World, build_world

SOURCE: Final = "simulator"
OVERRUN_S: Final = 2 * 86_400.0  # traffic and weather beyond the last day, for late events
_STREAMS: Final = ("world", "weather", "traffic", "demand", "inputs", "pings")


class Progress(Protocol):
    """Receives progress reports: ``stage`` is a short description, ``done`` of ``total``."""

    def __call__(self, stage: str, done: int, total: int) -> None: ...


@dataclasses.dataclass(frozen=True)
class Simulation:
    """A simulated marketplace.

    Attributes:
        config: the parameters it was simulated with.
        orders: one row per order (``datadir.ORDER_COLUMNS``, then ``traffic``).
        events: the event log (``schema.frame.EVENT_COLUMNS``), sorted by time then id.
        truth: per order (aligned with ``orders``), the hidden causes of its
            duration: ``hour``, ``congestion``, ``weather``, ``precipitation_mm``,
            ``speed_share``, ``store_speed``, ``peak_sensitivity``, ``prep_s``,
            ``open_orders``, ``nearest_idle_km`` (null: nobody idle),
            ``idle_couriers``, ``courier_wait_s``, ``drop_km``. Never written to
            disk: for tests and for judging features.
        summary: what ``import_summary.json`` holds.
    """

    config: SimulationConfig
    orders: pl.DataFrame
    events: pl.DataFrame
    truth: pl.DataFrame
    summary: dict[str, Any]


def simulate(config: SimulationConfig, progress: Progress | None = None) -> Simulation:
    """Simulate the marketplace described by ``config`` (deterministic for its seed)."""
    report = progress or _silent
    rng = dict(zip(_STREAMS, _streams(config.seed), strict=True))
    report("building the world", 0, 1)
    world, weather, traffic = _environment(config, rng)
    total = config.orders_per_day * config.days
    orders = generate_orders(total, config.start, config.days, world, weather, rng["demand"])
    inputs = order_inputs(
        orders, world.stores, traffic, weather, rng["inputs"], config.regime_change
    )
    report("building the world", 1, 1)
    outcomes = run_engine(
        world, orders, inputs, lambda done, n: report("simulating orders", done, n)
    )
    report("building events", 0, 1)
    stamps = output.Timestamps(config.start_time)
    frame = output.order_frame(world, orders, inputs, outcomes, stamps)
    events = _events(config, world, orders, frame, weather, outcomes, rng["pings"])
    if config.provider_observations:
        env = Environment(config, world, weather, traffic)
        observed = output.provider_events(env, frame, orders.created_s, stamps)
        events = output.event_log([events, observed])
    orders_table = output.orders_table(frame)
    report("building events", 1, 1)
    summary = _summary(config, world, orders_table, events)
    truth = _truth(world, orders, inputs, outcomes, orders_table)
    return Simulation(config, orders_table, events, truth, summary)


@dataclasses.dataclass(frozen=True)
class Environment:
    """The world, weather and traffic of a simulation, without its orders: what its seed
    fixes before the first order (the simulated vendor answers from it).

    Attributes:
        config: the parameters.
        world: markets, stores, couriers, shifts.
        weather: weather episodes per market, over the period and :data:`OVERRUN_S` more.
        traffic: hourly congestion per market, over the same span.
    """

    config: SimulationConfig
    world: World
    weather: WeatherEpisodes
    traffic: Traffic

    @property
    def span_s(self) -> float:
        """Seconds from the start covered by weather and traffic."""
        return self.config.horizon_s + OVERRUN_S


def environment(config: SimulationConfig) -> Environment:
    """The world, weather and traffic :func:`simulate` draws for ``config`` (the same ones)."""
    rng = dict(zip(_STREAMS, _streams(config.seed), strict=True))
    return Environment(config, *_environment(config, rng))


def _environment(
    config: SimulationConfig, rng: dict[str, np.random.Generator]
) -> tuple[World, WeatherEpisodes, Traffic]:
    world = build_world(config, rng["world"])
    weather = simulate_weather(
        world.markets.base_temp_c, config.horizon_s + OVERRUN_S, rng["weather"]
    )
    traffic = simulate_traffic(
        config.start, world.markets.rush_strength, config.horizon_s + OVERRUN_S, rng["traffic"]
    )
    return world, weather, traffic


def write_simulation(simulation: Simulation, directory: Path) -> None:
    """Write ``simulation`` as a data directory (orders, events, summary) into ``directory``.

    Use it inside :func:`arrive.datadir.staged` so that nothing half-written is left.
    """
    datadir.write_orders(directory, simulation.orders)
    datadir.write_events(directory, simulation.events)
    datadir.write_summary(directory, simulation.summary)


def _silent(stage: str, done: int, total: int) -> None:
    del stage, done, total


def _streams(seed: int) -> list[np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return [np.random.default_rng(child) for child in children]


def _events(
    config: SimulationConfig,
    world: World,
    orders: Orders,
    frame: pl.DataFrame,
    weather: WeatherEpisodes,
    outcomes: Outcomes,
    rng: np.random.Generator,
) -> pl.DataFrame:
    stamps = output.Timestamps(config.start_time)
    stores = world.stores
    store_lat, store_lon = stores.lat[orders.store], stores.lon[orders.store]
    segments = courier_segments(world, store_lat, store_lon, outcomes)
    pings = courier_pings(world, segments, outcomes, config.ping_interval_s, rng)
    # the last courier going offline or the last order ending, whichever is later
    ended_s = np.fmax(outcomes.delivered_s, outcomes.cancelled_s)
    end_s = max(float(outcomes.shift_offline_s.max(initial=0.0)), float(np.nanmax(ended_s)))
    snapshots = market_snapshots(world, orders, outcomes, config.snapshot_interval_s, end_s)
    return output.event_log(
        [
            output.lifecycle_events(frame),
            output.ping_events(world, pings, stamps),
            output.weather_events(world, weather, end_s, stamps),
            output.snapshot_events(world, snapshots, stamps),
        ]
    )


def _summary(
    config: SimulationConfig, world: World, orders: pl.DataFrame, events: pl.DataFrame
) -> dict[str, Any]:
    counts = events.group_by("type").len().sort("type")
    by_type = dict(zip(counts["type"].to_list(), counts["len"].to_list(), strict=True))
    cancelled = int((orders["status"] == "cancelled").sum())
    created = orders.get_column("created_at")
    return {
        "arrive_version": __version__,
        "source": SOURCE,
        "seed": config.seed,
        "parameters": config.as_dict(),
        "rows_in": orders.height,
        "rows_imported": orders.height,
        "rows_quarantined": 0,
        "events": by_type,
        "events_total": events.height,
        "orders": {"delivered": orders.height - cancelled, "cancelled": cancelled},
        "cancellations": {
            "total": cancelled,
            "rate": round(cancelled / max(orders.height, 1), 4),
            "by_reason": {output.CANCEL_REASON: cancelled} if cancelled else {},
        },
        "markets": _market_summary(world, orders),
        "created_at_min": _iso(created.min()),
        "created_at_max": _iso(created.max()),
        "first_event": _iso(events["event_time"].min()),
        "last_event": _iso(events["event_time"].max()),
    }


def _market_summary(world: World, orders: pl.DataFrame) -> list[dict[str, Any]]:
    per_market = orders.group_by("market_id").len()
    counts = dict(zip(per_market["market_id"].to_list(), per_market["len"].to_list(), strict=True))
    return [
        {
            "market_id": market_id,
            "stores": int((world.stores.market == m).sum()),
            "couriers": int((world.couriers.market == m).sum()),
            "shifts": int((world.shifts.market == m).sum()),
            "orders": counts.get(market_id, 0),
        }
        for m, market_id in enumerate(world.markets.ids)
    ]


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _truth(
    world: World, orders: Orders, inputs: OrderInputs, out: Outcomes, table: pl.DataFrame
) -> pl.DataFrame:
    """The hidden causes of each order's duration, aligned with the orders table."""
    stores = world.stores
    wait = out.assigned_s - (out.confirmed_s + inputs.dispatch_s)
    created_order = table.select("order_id", "created_at", "status", "duration_s")
    hidden = pl.DataFrame(
        {
            "hour": inputs.hour,
            "congestion": inputs.congestion,
            "weather": np.array(truth.WEATHER_CONDITIONS)[inputs.condition],
            "precipitation_mm": inputs.precipitation_mm,
            "speed_share": inputs.speed_share,
            "store_speed": stores.speed[orders.store],
            "peak_sensitivity": stores.peak_sensitivity[orders.store],
            "prep_s": out.prep_s,
            "open_orders": out.open_orders,
            "nearest_idle_km": out.nearest_idle_km,
            "idle_couriers": out.idle_couriers,
            "courier_wait_s": wait,
            "drop_km": orders.drop_km,
        }
    ).with_columns(pl.col(pl.Float64).fill_nan(None))
    return pl.concat([created_order, hidden], how="horizontal")
