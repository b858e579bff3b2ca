"""Small random marketplaces as event frames, for tests and docs.

:func:`random_marketplace` draws a few stores in a couple of markets, orders with
a full lifecycle (created, confirmed, food ready, picked up, delivered or
cancelled), courier pings, weather observations and market snapshots, all in
the event-log layout of :mod:`arrive.schema.frame`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import polars.selectors as cs

from arrive import datadir
from arrive.schema.frame import UTC_TIME, conform, created_orders

START = datetime(2025, 3, 3, tzinfo=UTC)
_FACTS = ("store_id", "market_id", "courier_id", "pickup_lat", "pickup_lon", "drop_lat", "drop_lon")


@dataclass(frozen=True)
class Marketplace:
    """An event log and the orders table it implies."""

    events: pl.DataFrame
    orders: pl.DataFrame


def random_marketplace(
    seed: int, n_orders: int = 60, days: float = 2.0, *, provider: bool = False
) -> Marketplace:
    """A reproducible random marketplace with ``n_orders`` orders over ``days`` days
    (with ``provider``, travel-time observations too: a provider's history)."""
    rng = np.random.default_rng(seed)
    span_s = days * 86400
    created = np.sort(rng.uniform(0, span_s, n_orders)).round()
    store = rng.integers(0, 4, n_orders)
    prep = rng.uniform(300, 1500, n_orders).round()
    total = prep + rng.uniform(600, 2400, n_orders).round()
    cancelled = rng.random(n_orders) < 0.1
    orders = pl.DataFrame(
        {
            "order_id": [f"o{i:04d}" for i in range(n_orders)],
            "store_id": [f"s{s}" for s in store],
            "market_id": [f"m{s % 2}" for s in store],
            "courier_id": [f"c{c}" for c in rng.integers(0, 5, n_orders)],
            "pickup_lat": 52.5 + store * 0.01,
            "pickup_lon": 13.4 + store * 0.01,
            "drop_lat": 52.5 + rng.uniform(-0.05, 0.05, n_orders),
            "drop_lon": 13.4 + rng.uniform(-0.05, 0.05, n_orders),
            "items": rng.integers(1, 6, n_orders),
            "created_s": created,
            "prep_s": prep,
            "total_s": total,
            "cancelled": cancelled,
        }
    )
    events = pl.concat(
        [
            _lifecycle(orders),
            _pings(rng, span_s),
            _weather(rng, span_s),
            _snapshots(rng, span_s),
            *([_provider(np.random.default_rng([seed, 22]), orders)] if provider else []),
        ],
        how="diagonal_relaxed",
    )
    table = orders.select(
        "order_id",
        *_FACTS,
        "items",
        status=pl.when("cancelled").then(pl.lit("cancelled")).otherwise(pl.lit("delivered")),
        created_at=_at("created_s"),
        delivered_at=pl.when("cancelled")
        .then(None)
        .otherwise(_at(pl.col("created_s") + pl.col("total_s"))),
        duration_s=pl.when("cancelled").then(None).otherwise(pl.col("total_s")),
    )
    return Marketplace(conform(events), table)


def order_spine(events: pl.DataFrame) -> pl.DataFrame:
    """Every order as known at its creation (from its OrderCreated event), in creation order."""
    return created_orders(events.lazy()).collect()


def _at(seconds: str | pl.Expr) -> pl.Expr:
    expr = pl.col(seconds) if isinstance(seconds, str) else seconds
    return (pl.lit(START) + pl.duration(seconds=expr)).cast(UTC_TIME)


def _lifecycle(orders: pl.DataFrame) -> pl.DataFrame:
    base = ("order_id", "store_id")
    created_fields = [pl.col(c) for c in _FACTS if c not in base] + [pl.col("items").cast(pl.Int32)]
    stages: list[tuple[str, pl.Expr, pl.Expr | bool]] = [
        ("order_created", pl.col("created_s"), True),
        ("order_confirmed", pl.col("created_s") + 60, True),
        ("food_ready", pl.col("created_s") + pl.col("prep_s"), ~pl.col("cancelled")),
        ("picked_up", pl.col("created_s") + pl.col("prep_s") + 120, ~pl.col("cancelled")),
        ("delivered", pl.col("created_s") + pl.col("total_s"), ~pl.col("cancelled")),
        ("cancelled", pl.col("created_s") + pl.col("prep_s") / 2, pl.col("cancelled")),
    ]
    frames = []
    for kind, when, keep in stages:
        extra = created_fields if kind == "order_created" else []
        frame = orders.filter(keep).select(
            *base,
            *extra,
            event_id=pl.col("order_id") + f":{kind}",
            type=pl.lit(kind),
            event_time=_at(when),
        )
        if kind == "cancelled":
            frame = frame.with_columns(reason=pl.lit("customer"))
        frames.append(frame)
    return pl.concat(frames, how="diagonal_relaxed")


def _pings(rng: np.random.Generator, span_s: float) -> pl.DataFrame:
    n = int(span_s / 120)
    return (
        pl.DataFrame(
            {
                "event_id": [f"p{i}" for i in range(n)],
                "type": "courier_ping",
                "event_time_s": np.sort(rng.uniform(0, span_s, n)).round(),
                "courier_id": [f"c{c}" for c in rng.integers(0, 5, n)],
                "lat": 52.5 + rng.uniform(-0.05, 0.05, n),
                "lon": 13.4 + rng.uniform(-0.05, 0.05, n),
                "status": rng.choice(["idle", "busy", "offline"], n),
            }
        )
        .with_columns(event_time=_at("event_time_s"))
        .drop("event_time_s")
    )


def _weather(rng: np.random.Generator, span_s: float) -> pl.DataFrame:
    hours = int(span_s / 3600)
    return (
        pl.DataFrame(
            {
                "event_id": [f"w{i}-{m}" for i in range(hours) for m in range(2)],
                "type": "weather_observation",
                "t": [i * 3600.0 for i in range(hours) for _ in range(2)],
                "market_id": [f"m{m}" for _ in range(hours) for m in range(2)],
                "condition": rng.choice(["clear", "rain", "storm"], hours * 2),
                "temperature_c": rng.uniform(0, 30, hours * 2),
                "precipitation_mm": rng.uniform(0, 5, hours * 2),
            }
        )
        .with_columns(event_time=_at("t"))
        .drop("t")
    )


def _provider(rng: np.random.Generator, orders: pl.DataFrame) -> pl.DataFrame:
    """Travel-time observations: none, one or two per order, from 40 min before its
    creation to 10 min after (whole seconds, never at the creation instant itself), and a
    few for no order (a leg asked outside an ETA request)."""
    n = orders.height
    per_order = rng.integers(0, 3, n)
    row = np.repeat(np.arange(n), per_order)
    offset = rng.integers(-2400, 600, len(row))
    offset[offset == 0] = -1
    created = orders.get_column("created_s").to_numpy()[row]
    ids = orders.get_column("order_id").to_numpy()[row]
    return (
        pl.DataFrame(
            {
                "event_id": [f"tt{i:05d}" for i in range(len(row))],
                "type": "travel_time_observation",
                "t": created + offset,
                "order_id": pl.Series(ids.tolist(), dtype=pl.String).scatter(
                    np.flatnonzero(rng.random(len(row)) < 0.1), None
                ),
                "provider": rng.choice(["osrm", "cache", "builtin"], len(row)),
                "travel_time_s": rng.uniform(120, 1800, len(row)).round(1),
            }
        )
        .with_columns(event_time=_at("t"))
        .drop("t")
    )


def _snapshots(rng: np.random.Generator, span_s: float) -> pl.DataFrame:
    n = int(span_s / 300)
    on_shift = rng.integers(1, 20, n * 2)
    return (
        pl.DataFrame(
            {
                "event_id": [f"m{i}-{m}" for i in range(n) for m in range(2)],
                "type": "market_snapshot",
                "t": [i * 300.0 for i in range(n) for _ in range(2)],
                "market_id": [f"m{m}" for _ in range(n) for m in range(2)],
                "couriers_on_shift": on_shift,
                "couriers_busy": rng.integers(0, on_shift + 1),
                "outstanding_orders": rng.integers(0, 30, n * 2),
            }
        )
        .with_columns(event_time=_at("t"))
        .drop("t")
    )


def advance(moment: datetime, seconds: float) -> datetime:
    """``moment`` plus ``seconds`` (a small convenience for tests)."""
    return moment + timedelta(seconds=seconds)


def ending_now(market: Marketplace) -> Marketplace:
    """``market`` with every time moved so that its last event happens now (so the features
    a service reads at the wall clock are fresh)."""
    delta = datetime.now(UTC) - market.events.get_column("event_time").max()  # type: ignore[operator]
    return Marketplace(
        market.events.with_columns(cs.datetime() + delta),
        market.orders.with_columns(cs.datetime() + delta),
    )


def write_data_dir(
    directory: Path, market: Marketplace, local_timezone: str = "Europe/Berlin"
) -> Path:
    """Write ``market`` in the data-directory layout (as an import would)."""
    directory.mkdir(parents=True, exist_ok=True)
    datadir.write_orders(directory, market.orders)
    datadir.write_events(directory, market.events)
    datadir.write_summary(directory, {"source": "factories", "local_timezone": local_timezone})
    return directory


DAILY_START = datetime(2025, 3, 3, 6, tzinfo=UTC)


def daily_orders(
    days: int = 28, per_day: int = 200, seed: int = 0, start: datetime = DAILY_START
) -> pl.DataFrame:
    """``per_day`` orders a day from 06:00 to 20:00 UTC, delivery times log-normal
    around 30 min, 5 % cancelled, a store category attribute."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    day = np.repeat(np.arange(days), per_day)
    created = [
        start + timedelta(days=int(d), seconds=float(s))
        for d, s in zip(day, rng.uniform(0, 14 * 3600, n), strict=True)
    ]
    cancelled = rng.random(n) < 0.05
    duration = np.where(cancelled, np.nan, 1800 * rng.lognormal(0, 0.35, n))
    frame = pl.DataFrame(
        {
            "order_id": [f"o{seed}-{i}" for i in range(n)],
            "status": np.where(cancelled, "cancelled", "delivered"),
            "created_at": pl.Series(created, dtype=pl.Datetime("us", "UTC")),
            "duration_s": pl.Series(duration).fill_nan(None),
            "store_category": rng.choice(["pizza", "sushi", "burger"], n),
            "vehicle": rng.choice(["bike", "scooter"], n),  # an attribute of the source
        }
    ).with_columns(delivered_at=pl.col("created_at") + pl.duration(seconds=pl.col("duration_s")))
    return datadir.conform_orders(frame)


def data_dir_until(source: Path, destination: Path, end: datetime) -> Path:
    """A copy of the data directory ``source`` as it stood at ``end``: the orders created
    and the events that happened before it (a data directory appended day by day)."""
    destination.mkdir(parents=True)
    orders = datadir.read_orders(source)
    datadir.write_orders(destination, orders.filter(pl.col("created_at") < end))
    events = datadir.scan_events(source).filter(pl.col("event_time") < end).collect()
    datadir.write_events(destination, events)
    summary = source / datadir.SUMMARY_FILE
    if summary.is_file():
        (destination / datadir.SUMMARY_FILE).write_bytes(summary.read_bytes())
    return destination
