"""Local hour of day and day of week of the order's creation, offline and online,
pinned on hand-made orders."""

from __future__ import annotations

from datetime import UTC, datetime

from arrive.testing.history import History, features_both_ways

BERLIN = "Europe/Berlin"  # UTC+1 until 2025-03-30 01:00 UTC, UTC+2 from then


def _history() -> History:
    history = History()
    history.order("noon", datetime(2025, 3, 3, 12, 45, 30, tzinfo=UTC))  # Mon 13:45:30 local
    history.order("midnight", datetime(2025, 3, 2, 23, 30, tzinfo=UTC))  # Mon 00:30 local
    history.order("dst", datetime(2025, 3, 30, 1, 30, tzinfo=UTC))  # Sun 03:30 CEST
    return history


def test_hour_is_local_and_fractional_to_the_minute() -> None:
    both = features_both_ways(_history(), BERLIN)
    both["noon"].expect({"hour_local": 13.75, "dow_local": 0.0})  # 13 + 45/60; seconds dropped
    both["dst"].expect({"hour_local": 3.5, "dow_local": 6.0})  # 3 + 30/60; Sunday = 6


def test_the_local_day_of_week_differs_from_the_utc_one_around_midnight() -> None:
    both = features_both_ways(_history(), BERLIN)
    both["midnight"].expect({"hour_local": 0.5, "dow_local": 0.0})  # Monday locally
    in_utc = features_both_ways(_history(), "UTC")
    in_utc["midnight"].expect({"hour_local": 23.5, "dow_local": 6.0})  # still Sunday in UTC
