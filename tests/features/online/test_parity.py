"""Online equals offline: every feature of every order, replayed through the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrive.features.online.parity import compare_online_offline, run_parity
from arrive.ingest.importers import import_into, load_mapping
from arrive.testing.factories import order_spine, random_marketplace


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_online_features_equal_offline_on_random_marketplaces(seed: int) -> None:
    market = random_marketplace(seed, n_orders=80, provider=True)
    report = compare_online_offline(
        market.events.lazy(), order_spine(market.events), "Europe/Berlin"
    )
    assert len(report.features) > 30
    assert report.orders == 80
    bad = {f.name: f.examples for f in report.features if f.mismatches}
    assert not bad


def test_parity_holds_on_the_food_delivery_log(food_delivery_csv: Path, tmp_path: Path) -> None:
    data = import_into(tmp_path / "fd", food_delivery_csv, load_mapping("food-delivery"))
    report = run_parity(data, sample=300, seed=1)
    assert report.orders == 300
    assert {"store_delivery_mean_7d", "platform_orders_today"} <= {f.name for f in report.features}
    assert report.mismatches == 0, [f.examples for f in report.features if f.mismatches]


def test_a_broken_online_value_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from arrive.features import calendar

    market = random_marketplace(5, n_orders=40)

    def wrong_hour(order, local):  # type: ignore[no-untyped-def]
        return {"hour_local": 99.0, "dow_local": float(local.weekday())}

    monkeypatch.setattr(calendar, "online", wrong_hour)  # what the reader calls
    report = compare_online_offline(
        market.events.lazy(), order_spine(market.events), "Europe/Berlin"
    )
    hour = next(f for f in report.features if f.name == "hour_local")
    assert hour.mismatches == 40
    assert report.mismatches == 40
