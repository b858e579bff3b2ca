"""Store history (delivery and prep times over trailing windows), offline and online,
pinned on a hand-made history of one store."""

from __future__ import annotations

import math

from arrive.testing.history import History, at, features_both_ways


def _deliveries() -> History:
    history = History()
    # delivery seconds = delivered - created; q is created at T (= at())
    history.order("a", at(hours=-2), delivered=at(minutes=-30))  # 5400 s, inside 1h
    history.order("b", at(minutes=-90), delivered=at(minutes=-60))  # 1800 s, at T-1h: inside
    history.order("c", at(hours=-3), delivered=at(hours=-1, seconds=-1))  # 7199 s, outside 1h
    history.order("d", at(hours=-48), delivered=at(hours=-48, seconds=1000))  # 1000 s, in 7d
    history.order("e", at(hours=-240), delivered=at(hours=-240, seconds=600))  # 600 s, in 28d
    history.order("f", at(minutes=-30), delivered=at())  # delivered at T: does not count
    history.order("g", at(minutes=-20), delivered=at(minutes=10))  # after T: does not count
    history.order("h", at(minutes=-50), delivered=at(minutes=-40), store_id="s2")  # other store
    history.order("q", at())
    return history


def test_delivery_windows_count_from_t_minus_w_inclusive_to_t_exclusive() -> None:
    q = features_both_ways(_deliveries())["q"]
    q.expect(
        {
            "store_delivery_count_1h": 2.0,  # a, b
            "store_delivery_mean_1h": 3600.0,  # (5400 + 1800) / 2
            "store_delivery_count_1d": 3.0,  # a, b, c
            "store_delivery_mean_1d": 14399.0 / 3,  # (5400 + 1800 + 7199) / 3
            "store_delivery_count_7d": 4.0,  # + d
            "store_delivery_mean_7d": 3849.75,  # (14399 + 1000) / 4
            "store_delivery_count_28d": 5.0,  # + e
            "store_delivery_mean_28d": 3199.8,  # (15399 + 600) / 5
            "store_history_count": 5.0,  # every delivery strictly before T
        }
    )


def test_delivery_spread_is_the_population_std_over_seven_days() -> None:
    q = features_both_ways(_deliveries())["q"]
    # values 5400, 1800, 7199, 1000; mean 3849.75; squared deviations
    # 1550.25² + 2049.75² + 3349.25² + 2849.75² = 25943300.75; / 4 = 6485825.1875
    q.expect({"store_delivery_std_7d": math.sqrt(6485825.1875)})


def test_the_other_store_sees_only_its_own_delivery() -> None:
    history = _deliveries()
    history.order("q2", at(), store_id="s2")
    q2 = features_both_ways(history)["q2"]
    q2.expect(
        {
            "store_delivery_count_1h": 1.0,  # h: 600 s, delivered at T-40m
            "store_delivery_mean_1h": 600.0,
            "store_history_count": 1.0,
            "store_delivery_std_7d": 0.0,  # one value
        }
    )


def test_a_store_without_history_has_zero_counts_and_missing_means() -> None:
    history = _deliveries()
    history.order("new", at(), store_id="s9")
    fresh = features_both_ways(history)["new"]
    fresh.expect(
        {
            "store_history_count": 0.0,
            "store_delivery_count_1h": 0.0,
            "store_delivery_mean_1h": None,  # a mean of nothing is unknown, not 0
            "store_delivery_mean_28d": None,
            "store_delivery_std_7d": None,
        }
    )


def test_prep_runs_from_confirmation_or_else_creation_to_food_ready() -> None:
    history = History()
    # prep seconds = ready - (confirmed, else created)
    history.order("p1", at(minutes=-50), confirmed=at(minutes=-48), ready=at(minutes=-30))  # 1080
    history.order("p2", at(minutes=-40), ready=at(minutes=-20))  # 1200, from creation
    history.order("p3", at(hours=-3), confirmed=at(minutes=-179), ready=at(hours=-1, seconds=-1))
    # p3: 7139 s (1 h 59 min - 1 s), ready just outside 1h
    history.order("p4", at(minutes=-10), ready=at())  # ready at T: does not count
    history.order("d", at(hours=-5), delivered=at(hours=-4))  # the group needs a delivery
    history.order("q", at())
    q = features_both_ways(history)["q"]
    q.expect(
        {
            "store_prep_count_1h": 2.0,
            "store_prep_mean_1h": 1140.0,  # (1080 + 1200) / 2
            "store_prep_count_1d": 3.0,
            "store_prep_mean_1d": 9419.0 / 3,  # (1080 + 1200 + 7139) / 3
            "store_prep_count_7d": 3.0,
        }
    )


def test_without_delivered_events_the_group_is_left_out_not_zero() -> None:
    history = History()
    history.order("a", at(hours=-1), ready=at(minutes=-30), cancelled=at(minutes=-20))
    history.order("q", at())
    q = features_both_ways(history)["q"]
    assert q.left_out["store_history (group)"] == "the event log has no delivered events"
    assert not any(name.startswith(("store_delivery", "store_prep")) for name in q.offline)
    q.expect({"store_history_count": None})


def test_without_food_ready_events_there_are_no_prep_features() -> None:
    history = History()
    history.order("a", at(hours=-1), delivered=at(minutes=-30))
    history.order("q", at())
    q = features_both_ways(history)["q"]
    q.expect({"store_delivery_count_1h": 1.0, "store_prep_mean_1h": None})
    assert not any(name.startswith("store_prep") for name in q.offline)


def test_an_order_naming_no_store_has_store_history_missing_not_zero() -> None:
    history = _deliveries()
    history.order("q-nostore", at(), store_id=None)
    features_both_ways(history)["q-nostore"].expect(
        {
            "store_history_count": None,
            "store_delivery_count_1h": None,
            "store_delivery_count_28d": None,
            "store_delivery_mean_1h": None,
        }
    )


def test_a_confirmation_after_food_ready_does_not_start_the_prep() -> None:
    history = History()
    # confirmed only after the food was ready (and after T): prep runs from creation,
    # 1200 s; the late confirmation must neither shorten it nor leak in from after T
    history.order("p", at(minutes=-40), ready=at(minutes=-20), confirmed=at(minutes=5))
    history.order("d", at(hours=-5), delivered=at(hours=-4))
    history.order("q", at())
    features_both_ways(history)["q"].expect(
        {"store_prep_count_1h": 1.0, "store_prep_mean_1h": 1200.0}
    )
