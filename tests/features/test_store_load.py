"""Store load (orders open at the store, orders placed over 15 min and 1 h), offline and
online, pinned on a hand-made history."""

from __future__ import annotations

from arrive.testing.history import History, at, features_both_ways


def _history() -> History:
    history = History()
    history.order("o1", at(hours=-2))  # still open; placed outside 1h
    history.order("o2", at(hours=-1), delivered=at(minutes=-10))  # placed at T-1h: inside 1h
    history.order("o3", at(hours=-1, seconds=-1), cancelled=at(minutes=-5))  # just outside 1h
    history.order("o4", at(minutes=-15))  # placed at T-15m: inside 15m; open
    history.order("o5", at(minutes=-15, seconds=-1), delivered=at())  # finished at T: still open
    history.order("o6", at())  # placed at T, with q: does not count
    history.order("o7", at(minutes=-5), store_id="s2")  # another store
    history.order("o8", at(minutes=1))  # after T
    history.order("q", at())
    return history


def test_open_orders_count_those_placed_before_t_and_not_finished_before_t() -> None:
    q = features_both_ways(_history())["q"]
    q.expect({"store_open_orders": 3.0})  # o1, o4, o5 (o2 delivered, o3 cancelled before T)


def test_recent_orders_count_from_t_minus_w_inclusive_to_t_exclusive() -> None:
    q = features_both_ways(_history())["q"]
    q.expect(
        {
            "store_orders_15m": 1.0,  # o4 (o5 is 1 s too old, o6 is at T)
            "store_orders_1h": 3.0,  # o2, o4, o5 (o3 is 1 s too old)
        }
    )


def test_another_store_counts_only_its_own_orders() -> None:
    history = _history()
    history.order("q2", at(), store_id="s2")
    features_both_ways(history)["q2"].expect(
        {"store_open_orders": 1.0, "store_orders_15m": 1.0, "store_orders_1h": 1.0}  # o7
    )


def test_an_order_is_open_until_its_first_terminal_event() -> None:
    history = History()
    # delivered at T-20m, then a stray cancellation at T-10m: closed once, at T-20m
    history.order("a", at(hours=-1), delivered=at(minutes=-20), cancelled=at(minutes=-10))
    history.order("q1", at(minutes=-30))  # a is open then
    history.order("q2", at())
    both = features_both_ways(history)
    both["q1"].expect({"store_open_orders": 1.0})
    both["q2"].expect({"store_open_orders": 1.0})  # q1 (never finished); a once closed


def test_without_store_ids_the_group_is_left_out() -> None:
    history = History()
    history.order("a", at(minutes=-5), store_id=None)
    history.order("q", at(), store_id=None)
    q = features_both_ways(history)["q"]
    assert q.left_out["store_load (group)"] == "orders carry no store_id"
    assert "store_open_orders" not in q.offline


def test_an_order_naming_no_store_has_store_load_missing_not_zero() -> None:
    history = _history()
    history.order("q-nostore", at(), store_id=None)
    features_both_ways(history)["q-nostore"].expect(
        {"store_open_orders": None, "store_orders_15m": None, "store_orders_1h": None}
    )
