"""The provider's travel time for an order: the latest answer recorded for it at or before
its creation, never later, never another order's; offline and online the same."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from arrive.features import BuildContext, FeatureSet, build_features
from arrive.features.online.parity import compare_online_offline
from arrive.schema.events import TravelTimeObservation
from arrive.schema.frame import conform, events_to_frame
from arrive.testing.factories import order_spine, random_marketplace

FEATURE = "travel_time_provider_s"


def build(events: pl.DataFrame) -> FeatureSet:
    spine = order_spine(events)
    return build_features(BuildContext(spine, events.lazy(), "Europe/Berlin"))


def observation(order_id: str | None, at: object, seconds: float, n: int) -> TravelTimeObservation:
    return TravelTimeObservation(
        event_id=f"x{n}", event_time=at, order_id=order_id, provider="osrm", travel_time_s=seconds
    )  # type: ignore[arg-type]


def with_only(market_events: pl.DataFrame, extra: list[TravelTimeObservation]) -> pl.DataFrame:
    """The marketplace's log with its provider observations replaced by ``extra``."""
    kept = market_events.filter(pl.col("type") != "travel_time_observation")
    return conform(pl.concat([kept, events_to_frame(extra)]))


def test_the_latest_answer_at_or_before_creation_is_used_never_a_later_one() -> None:
    market = random_marketplace(7, n_orders=20, provider=True)
    spine = order_spine(market.events)
    order_id, t = spine.get_column("order_id")[10], spine.get_column("created_at")[10]
    events = with_only(
        market.events,
        [
            observation(order_id, t - timedelta(minutes=5), 300.0, 1),
            observation(order_id, t, 420.0, 2),  # asked while answering its own request
            observation(order_id, t + timedelta(microseconds=1), 999.0, 3),
            observation(spine.get_column("order_id")[11], t - timedelta(seconds=1), 777.0, 4),
        ],
    )
    frame = build(events).frame.filter(pl.col("order_id") == order_id)
    assert frame.get_column(FEATURE).to_list() == [420.0]


def test_an_answer_older_than_the_ttl_is_unknown() -> None:
    market = random_marketplace(7, n_orders=20, provider=True)
    spine = order_spine(market.events)
    order_id, t = spine.get_column("order_id")[10], spine.get_column("created_at")[10]
    events = with_only(market.events, [observation(order_id, t - timedelta(hours=2), 300.0, 1)])
    built = build(events)
    # the only answer is too old for every order: the feature has no value, so it is left out
    assert FEATURE not in built.names
    assert built.left_out[FEATURE] == "no value in this data"


def test_data_without_provider_history_leaves_the_group_out_with_its_reason() -> None:
    market = random_marketplace(7, n_orders=20, provider=True)
    built = build(with_only(market.events, []))
    assert FEATURE not in built.frame.columns
    assert "no provider history" in built.left_out["provider (group)"]


def test_online_equals_offline_for_the_provider_time() -> None:
    market = random_marketplace(11, n_orders=80, provider=True)
    report = compare_online_offline(
        market.events.lazy(), order_spine(market.events), "Europe/Berlin"
    )
    (parity,) = [f for f in report.features if f.name == FEATURE]
    assert parity.compared == 80
    assert parity.mismatches == 0, parity.examples
    offline = build(market.events).frame.get_column(FEATURE)
    assert 0 < offline.null_count() < len(offline)  # both known and unknown values compared
