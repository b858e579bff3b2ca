"""Demand so far today (orders placed since local midnight, platform-wide and in the
order's market), offline and online, pinned on a hand-made history."""

from __future__ import annotations

from datetime import UTC, datetime

from arrive.testing.history import History, at, features_both_ways

BERLIN = "Europe/Berlin"  # UTC+1 in early March: T = 12:00 UTC is 13:00 local
LOCAL_MIDNIGHT = datetime(2025, 3, 2, 23, tzinfo=UTC)  # 2025-03-03 00:00 in Berlin


def _history() -> History:
    history = History()
    history.order("late", datetime(2025, 3, 2, 22, 59, 59, tzinfo=UTC))  # 23:59:59 the day before
    history.order("first", LOCAL_MIDNIGHT)  # 00:00:00 local: today
    history.order("m1", at(hours=-1))
    history.order("m2", at(minutes=-30), market_id="m2")
    history.order("tie", at())  # at T: does not count
    history.order("next", at(minutes=1))  # after T
    history.order("q", at())
    return history


def test_orders_today_start_at_local_midnight_and_end_before_t() -> None:
    q = features_both_ways(_history(), BERLIN)["q"]
    q.expect(
        {
            "platform_orders_today": 3.0,  # first, m1, m2
            "market_orders_today": 2.0,  # first, m1 (m2 is another market)
        }
    )


def test_the_day_is_the_marketplace_s_local_day() -> None:
    q = features_both_ways(_history(), "UTC")["q"]
    # in UTC, 'first' (23:00 on 2 March) belongs to the day before
    q.expect({"platform_orders_today": 2.0, "market_orders_today": 1.0})


def test_the_first_order_of_the_day_sees_none_before_it() -> None:
    first = features_both_ways(_history(), BERLIN)["first"]
    first.expect({"platform_orders_today": 0.0, "market_orders_today": 0.0})


def test_without_market_ids_only_the_platform_count_is_built() -> None:
    history = History()
    history.order("a", at(hours=-1), market_id=None)
    history.order("q", at(), market_id=None)
    q = features_both_ways(history)["q"]
    q.expect({"platform_orders_today": 1.0})
    assert "market_orders_today" not in q.offline


def test_an_order_naming_no_market_has_the_market_count_missing_not_zero() -> None:
    history = _history()
    history.order("q-nomarket", at(), market_id=None)
    features_both_ways(history, BERLIN)["q-nomarket"].expect(
        {"platform_orders_today": 3.0, "market_orders_today": None}  # first, m1, m2
    )
