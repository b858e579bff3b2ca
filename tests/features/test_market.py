"""Market supply and demand (latest snapshot with its ratios and TTL, open and recent
orders, recent delivery times), offline and online, pinned on a hand-made history."""

from __future__ import annotations

from arrive.testing.history import History, at, features_both_ways

_SNAPSHOT = (
    "market_couriers_on_shift",
    "market_couriers_busy",
    "market_outstanding_orders",
    "market_busy_ratio",
    "market_orders_per_courier",
)


def _history() -> History:
    history = History()
    # m1: the latest snapshot before T is the one at T-30m exactly (TTL 30 min: still fresh)
    history.snapshot("m1", at(minutes=-40), on_shift=10, busy=2, outstanding=5)
    history.snapshot("m1", at(minutes=-30), on_shift=8, busy=6, outstanding=12)
    history.snapshot("m1", at(), on_shift=1, busy=1, outstanding=99)  # at T: does not count
    # m2: its only snapshot is one second older than the TTL
    history.snapshot("m2", at(minutes=-30, seconds=-1), on_shift=5, busy=1, outstanding=3)
    # m3: nobody on shift
    history.snapshot("m3", at(minutes=-1), on_shift=0, busy=0, outstanding=4)
    # orders and deliveries in m1 (stores s1 and s2)
    history.order("o1", at(hours=-5), delivered=at(hours=-4))  # 3600 s, in 1d only
    history.order("o2", at(hours=-1), delivered=at(minutes=-10))  # 3000 s; placed at T-1h
    history.order("o3", at(minutes=-15), store_id="s2")  # open; placed at T-15m
    history.order("o4", at(minutes=-20), delivered=at())  # delivered at T: open, not counted
    history.order("o5", at(minutes=-50), delivered=at(minutes=-45), market_id="m2")  # m2
    for market in ("m1", "m2", "m3", "m4"):
        history.order(f"q-{market}", at(), market_id=market)
    return history


def test_the_latest_snapshot_within_its_ttl_and_its_ratios() -> None:
    q = features_both_ways(_history())["q-m1"]
    q.expect(
        {
            "market_couriers_on_shift": 8.0,
            "market_couriers_busy": 6.0,
            "market_outstanding_orders": 12.0,
            "market_busy_ratio": 0.75,  # 6 / 8
            "market_orders_per_courier": 1.5,  # 12 / 8
        }
    )


def test_a_snapshot_older_than_its_ttl_is_missing_not_zero() -> None:
    q = features_both_ways(_history())["q-m2"]
    q.expect(dict.fromkeys(_SNAPSHOT))


def test_ratios_over_no_courier_on_shift_are_missing() -> None:
    q = features_both_ways(_history())["q-m3"]
    q.expect(
        {
            "market_couriers_on_shift": 0.0,
            "market_couriers_busy": 0.0,
            "market_outstanding_orders": 4.0,
            "market_busy_ratio": None,  # 0 / 0
            "market_orders_per_courier": None,  # 4 / 0
        }
    )


def test_a_market_without_snapshots_has_them_missing() -> None:
    features_both_ways(_history())["q-m4"].expect(dict.fromkeys(_SNAPSHOT))


def test_market_load_counts_every_store_of_the_market() -> None:
    q = features_both_ways(_history())["q-m1"]
    q.expect(
        {
            "market_open_orders": 2.0,  # o3, o4 (o1, o2 delivered before T)
            "market_orders_15m": 1.0,  # o3 at T-15m
            "market_orders_1h": 3.0,  # o2 at T-1h, o3, o4
        }
    )


def test_recent_delivery_times_in_the_market() -> None:
    both = features_both_ways(_history())
    both["q-m1"].expect(
        {
            "market_delivery_mean_1h": 3000.0,  # o2 only (o4 is delivered at T)
            "market_delivery_mean_1d": 3300.0,  # (3600 + 3000) / 2
        }
    )
    both["q-m2"].expect({"market_delivery_mean_1h": 300.0})  # o5
    both["q-m3"].expect({"market_delivery_mean_1h": None, "market_open_orders": 0.0})


def test_without_snapshot_events_the_snapshot_features_are_not_built() -> None:
    history = History()
    history.order("a", at(minutes=-5))
    history.order("q", at())
    q = features_both_ways(history, extra=_SNAPSHOT)["q"]
    assert not set(_SNAPSHOT) & set(q.offline)
    q.expect({**dict.fromkeys(_SNAPSHOT), "market_orders_15m": 1.0})


def test_without_market_ids_the_group_is_left_out() -> None:
    history = History()
    history.snapshot("m1", at(minutes=-5), on_shift=3, busy=1, outstanding=2)
    history.order("q", at(), market_id=None)
    q = features_both_ways(history)["q"]
    assert q.left_out["market (group)"] == "orders carry no market_id"
    assert not any(name.startswith("market_") for name in q.offline)


def test_an_order_naming_no_market_has_market_load_missing_not_zero() -> None:
    history = _history()
    history.order("q-nomarket", at(), market_id=None)
    features_both_ways(history)["q-nomarket"].expect(
        {
            "market_open_orders": None,
            "market_orders_15m": None,
            "market_orders_1h": None,
            "market_delivery_mean_1h": None,
            **dict.fromkeys(_SNAPSHOT),
        }
    )
