"""The simulator: deterministic, sane event logs, and a ground truth that shows in the data."""

from __future__ import annotations

import polars as pl
import pytest

from arrive.datadir import ORDER_COLUMNS
from arrive.errors import ConfigError
from arrive.ingest.simulator import Simulation, SimulationConfig, simulate
from arrive.schema.events import Cancelled, CourierPing, Delivered, OrderCreated
from arrive.schema.frame import EVENT_COLUMNS, frame_to_events

SMALL = SimulationConfig(seed=11, days=2, orders_per_day=1500, markets=2)
#: enough market-days for several weather episodes
STATISTICAL = SimulationConfig(seed=5, days=4, orders_per_day=3000, markets=4)
LIFECYCLE = (
    "order_created",
    "order_confirmed",
    "courier_assigned",
    "food_ready",
    "picked_up",
    "delivered",
    "cancelled",
)


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def lifecycle(sim: Simulation) -> pl.DataFrame:
    """One row per order, one time column per lifecycle event type."""
    events = sim.events.filter(pl.col("type").is_in(LIFECYCLE))
    return events.pivot(on="type", index="order_id", values="event_time").select(
        "order_id", *LIFECYCLE
    )


@pytest.fixture(scope="module")
def delivered() -> pl.DataFrame:
    """Delivered orders of a larger world, with their hidden causes."""
    world = simulate(STATISTICAL)
    causes = world.truth.drop("created_at", "status", "duration_s")
    return world.orders.join(causes, on="order_id").filter(pl.col("status") == "delivered")


def test_the_same_seed_gives_the_same_frames(sim: Simulation) -> None:
    again = simulate(SMALL)
    assert again.orders.equals(sim.orders)
    assert again.events.equals(sim.events)
    assert again.summary == sim.summary


def test_another_seed_gives_other_frames(sim: Simulation) -> None:
    other = simulate(SimulationConfig(seed=12, days=2, orders_per_day=1500, markets=2))
    assert other.orders.height == sim.orders.height
    assert not other.orders.equals(sim.orders)
    assert not other.events.equals(sim.events)


def test_orders_table_has_the_canonical_columns_then_traffic(sim: Simulation) -> None:
    orders = sim.orders
    assert orders.height == SMALL.orders_per_day * SMALL.days
    assert dict(orders.schema) == {**ORDER_COLUMNS, "traffic": pl.String()}
    assert set(orders["status"]) == {"delivered", "cancelled"}
    assert orders["source_line"].null_count() == orders.height
    assert orders["order_id"].is_unique().all()
    assert set(orders["market_id"]) == {"bristol", "leeds"}
    assert set(orders["traffic"]) <= {"low", "medium", "high", "jam"}


def test_cancelled_orders_have_no_delivery(sim: Simulation) -> None:
    cancelled = sim.orders.filter(pl.col("status") == "cancelled")
    assert cancelled.height > 0
    assert cancelled["delivered_at"].null_count() == cancelled.height
    assert cancelled["duration_s"].null_count() == cancelled.height


def test_delivered_orders_take_a_plausible_time(sim: Simulation) -> None:
    minutes = sim.orders.filter(pl.col("status") == "delivered")["duration_s"] / 60
    assert minutes.null_count() == 0
    assert minutes.min() >= 5  # type: ignore[operator]
    assert minutes.max() <= 150  # type: ignore[operator]
    assert 20 < minutes.median() < 60  # type: ignore[operator]


def test_events_are_canonical_sorted_and_uniquely_identified(sim: Simulation) -> None:
    events = sim.events
    assert dict(events.schema) == EVENT_COLUMNS
    assert events["event_time"].is_sorted()
    assert events["event_id"].is_unique().all()
    assert (events["schema_version"] == 1).all()
    assert events["event_time"].min() >= SMALL.start_time  # type: ignore[operator]


def test_every_event_decodes(sim: Simulation) -> None:
    decoded = list(frame_to_events(sim.events))
    assert len(decoded) == sim.events.height
    created = next(e for e in decoded if isinstance(e, OrderCreated))
    assert created.attributes["traffic"] in {"low", "medium", "high", "jam"}
    assert created.store_id
    assert created.market_id
    assert created.store_category
    assert any(isinstance(e, Cancelled) and e.reason == "customer_late" for e in decoded)
    assert {e.status for e in decoded if isinstance(e, CourierPing)} == {"idle", "busy", "offline"}


def test_lifecycle_steps_come_in_order(lifecycle: pl.DataFrame) -> None:
    steps = [
        ("order_created", "order_confirmed"),
        ("order_confirmed", "courier_assigned"),
        ("order_confirmed", "food_ready"),
        ("courier_assigned", "picked_up"),
        ("food_ready", "picked_up"),
        ("picked_up", "delivered"),
        ("order_created", "cancelled"),
    ]
    for before, after in steps:
        broken = lifecycle.filter(pl.col(after) < pl.col(before))
        assert broken.height == 0, f"{after} before {before}"


def test_every_order_ends_exactly_once(lifecycle: pl.DataFrame, sim: Simulation) -> None:
    assert lifecycle.height == sim.orders.height
    ends = lifecycle.select(
        pl.col("delivered").is_not_null().cast(pl.Int8) + pl.col("cancelled").is_not_null()
    )
    assert ends.to_series().eq(1).all()
    assert lifecycle.filter(pl.col("cancelled").is_not_null())["picked_up"].null_count() == (
        lifecycle["cancelled"].is_not_null().sum()
    )


def test_every_order_is_created_confirmed_and_delivered_orders_fully_tracked(
    lifecycle: pl.DataFrame,
) -> None:
    assert lifecycle["order_created"].null_count() == 0
    assert lifecycle["order_confirmed"].null_count() == 0
    done = lifecycle.filter(pl.col("delivered").is_not_null())
    assert done.null_count().select(LIFECYCLE[:6]).sum_horizontal().item() == 0


def test_orders_table_matches_the_events(sim: Simulation, lifecycle: pl.DataFrame) -> None:
    joined = sim.orders.join(lifecycle, on="order_id")
    assert (joined["created_at"] == joined["order_created"]).all()
    done = joined.filter(pl.col("status") == "delivered")
    assert (done["delivered_at"] == done["delivered"]).all()


def test_couriers_ping_every_few_minutes_and_on_status_change(sim: Simulation) -> None:
    pings = sim.events.filter(pl.col("type") == "courier_ping")
    per_order = pings.height / sim.orders.height
    assert 3 < per_order < 12
    gaps = (
        pings.sort("courier_id", "event_time")
        .with_columns(gap_s=pl.col("event_time").diff().dt.total_seconds().over("courier_id"))
        .filter(pl.col("status").shift(1).over("courier_id") != "offline")
    )
    assert gaps["gap_s"].max() <= SMALL.ping_interval_s  # type: ignore[operator]


def test_a_courier_is_busy_between_assignment_and_delivery(sim: Simulation) -> None:
    first = sim.events.filter(
        pl.col("type").is_in(["courier_assigned", "delivered"]) & pl.col("courier_id").is_not_null()
    ).head(1)
    courier, assigned_at = first["courier_id"].item(), first["event_time"].item()
    order_id = first["order_id"].item()
    delivered_at = sim.orders.filter(pl.col("order_id") == order_id)["delivered_at"].item()
    window = sim.events.filter(
        (pl.col("type") == "courier_ping")
        & (pl.col("courier_id") == courier)
        & pl.col("event_time").is_between(assigned_at, delivered_at, closed="left")
    )
    assert window.height > 0
    assert set(window["status"]) == {"busy"}


def test_snapshots_every_five_minutes_and_weather_every_hour_per_market(sim: Simulation) -> None:
    for kind, period_s in (("market_snapshot", 300), ("weather_observation", 3600)):
        rows = sim.events.filter(pl.col("type") == kind)
        for market in ("bristol", "leeds"):
            times = rows.filter(pl.col("market_id") == market)["event_time"]
            gaps = times.diff().dt.total_seconds().drop_nulls()
            assert gaps.max() <= period_s  # type: ignore[operator]
    snapshots = sim.events.filter(pl.col("type") == "market_snapshot")
    assert (snapshots["couriers_busy"] <= snapshots["couriers_on_shift"]).all()
    assert snapshots["outstanding_orders"].max() > 0  # type: ignore[operator]


def test_summary_counts_what_was_written(sim: Simulation) -> None:
    summary = sim.summary
    counts = sim.events["type"].value_counts()
    assert summary["events"] == dict(zip(counts["type"], counts["count"], strict=True))
    assert summary["rows_in"] == summary["rows_imported"] == sim.orders.height
    assert summary["rows_quarantined"] == 0
    cancelled = int((sim.orders["status"] == "cancelled").sum())
    assert summary["cancellations"]["total"] == cancelled
    assert summary["events"]["delivered"] == sim.orders.height - cancelled
    assert summary["source"] == "simulator"
    assert summary["parameters"]["seed"] == SMALL.seed


def _mean_minutes(frame: pl.DataFrame, condition: pl.Expr) -> float:
    return float(frame.filter(condition)["duration_s"].mean()) / 60  # type: ignore[arg-type]


def test_bad_weather_makes_deliveries_longer(delivered: pl.DataFrame) -> None:
    bad = pl.col("weather").is_in(["rain", "storm", "snow", "fog"])
    assert delivered.filter(bad).height > 100
    assert _mean_minutes(delivered, bad) > _mean_minutes(delivered, ~bad) + 1


def test_rush_hours_make_deliveries_longer(delivered: pl.DataFrame) -> None:
    dinner_rush = pl.col("hour").is_between(18, 20)
    afternoon_lull = pl.col("hour").is_between(15, 17)
    assert _mean_minutes(delivered, dinner_rush) > _mean_minutes(delivered, afternoon_lull) + 2


def test_slow_stores_make_deliveries_longer(delivered: pl.DataFrame) -> None:
    slow, fast = delivered["store_speed"].quantile(0.75), delivered["store_speed"].quantile(0.25)
    slower = _mean_minutes(delivered, pl.col("store_speed") >= slow)
    faster = _mean_minutes(delivered, pl.col("store_speed") <= fast)
    assert slower > faster + 3


def test_busy_stores_make_deliveries_longer(delivered: pl.DataFrame) -> None:
    quiet = pl.col("open_orders") == 0
    busy = pl.col("open_orders") >= 3
    assert _mean_minutes(delivered, busy) > _mean_minutes(delivered, quiet) + 2


def test_a_distant_nearest_courier_makes_deliveries_longer(delivered: pl.DataFrame) -> None:
    near = pl.col("nearest_idle_km") < 1.0
    far = pl.col("nearest_idle_km") > 3.0
    nobody = pl.col("idle_couriers") == 0
    assert delivered.filter(far).height > 50
    assert _mean_minutes(delivered, far) > _mean_minutes(delivered, near) + 2
    assert _mean_minutes(delivered, nobody) > _mean_minutes(delivered, near)


def test_long_drops_make_deliveries_longer(delivered: pl.DataFrame) -> None:
    assert _mean_minutes(delivered, pl.col("drop_km") > 3) > _mean_minutes(
        delivered, pl.col("drop_km") < 1.5
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("days", 0), ("orders_per_day", 0), ("markets", 13), ("seed", -1), ("days", 1.5)],
)
def test_config_refuses_out_of_range_values(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        SimulationConfig(**{field: value})  # type: ignore[arg-type]


def test_size_is_a_parameter() -> None:
    tiny = simulate(SimulationConfig(days=1, orders_per_day=50))
    assert tiny.orders.height == 50
    assert tiny.events.filter(pl.col("type") == "order_created").height == 50
    assert {type(e) for e in frame_to_events(tiny.events)} >= {OrderCreated, Delivered}
