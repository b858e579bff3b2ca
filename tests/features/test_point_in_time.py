"""Point-in-time correctness: no feature of any order uses an event at or after its creation."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arrive.features import BuildContext, FeatureSet, build_features
from arrive.testing.factories import order_spine as spine_of
from arrive.testing.factories import random_marketplace


def build(spine: pl.DataFrame, events: pl.DataFrame) -> FeatureSet:
    return build_features(BuildContext(spine, events.lazy(), "Europe/Berlin"))


def _same(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b))
    return a == b


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 100_000), pick=st.integers(0, 59))
def test_features_do_not_change_when_the_future_is_removed(seed: int, pick: int) -> None:
    # with a provider's history: its observations are never at a creation instant here
    # (an answer stamped at the instant itself counts: tests/features/test_provider.py)
    market = random_marketplace(seed, n_orders=60, provider=True)
    spine = spine_of(market.events)
    t = spine.get_column("created_at")[pick]
    future = pl.col("event_time") >= t
    full = build(spine, market.events).frame.row(pick, named=True)
    past_only = build(spine, market.events.filter(~future)).frame.row(pick, named=True)
    # A group or column is kept only when the log (over all orders) supports it, so
    # removing the future can remove columns whose value at t rests on the past alone;
    # moving the future a year later keeps more of them, and must not change a value.
    moved = market.events.with_columns(
        event_time=pl.when(future)
        .then(pl.col("event_time") + pl.duration(days=365))
        .otherwise(pl.col("event_time"))
    )
    moved_future = build(spine, moved).frame.row(pick, named=True)
    for name, value in full.items():
        if name in moved_future:
            assert _same(value, moved_future[name]), f"{name} depends on events after creation"
        if name in past_only:
            assert _same(value, past_only[name]), f"{name} uses events at or after creation"


def test_an_event_at_the_creation_instant_is_excluded() -> None:
    market = random_marketplace(3, n_orders=60)
    spine = spine_of(market.events)
    t = spine.get_column("created_at")[30]
    store = spine.get_column("store_id")[30]
    same_instant = (
        market.events.filter(pl.col("type") == "delivered")
        .head(1)
        .with_columns(event_time=pl.lit(t), event_id=pl.lit("tie"), store_id=pl.lit(store))
    )
    before = build(spine, market.events).frame.row(30, named=True)
    after = build(spine, pl.concat([market.events, same_instant])).frame.row(30, named=True)
    assert before["store_history_count"] == after["store_history_count"]
