"""Outcome events decoded a batch at a time; what is not an event is refused and counted."""

from __future__ import annotations

from datetime import timedelta
from types import ModuleType

import pytest

from arrive.monitoring.outcome_events import decode
from arrive.schema.codec import encode_event


@pytest.mark.parametrize(
    "junk",
    [
        [b"not json at all"],
        [b'{"type": "delivered", "event_time": "2025-03-03T12:00:00Z"}'],  # no order
        [b'{"order_id": "o9"}', b"{\n}"],  # no type or time; a payload spanning lines
        [],
    ],
)
def test_good_events_are_kept_and_the_rest_refused(kit: ModuleType, junk: list[bytes]) -> None:
    good = [
        kit.created("o1", 0, "m7", "sushi"),
        kit.delivered("o1", 900),
        kit.cancelled("o2", 100),
        kit.delivered("o3", 2000),
    ]
    payloads = [encode_event(e) for e in good]
    decoded = decode([payloads[0], *junk, *payloads[1:]])
    assert decoded.refused == len(junk)
    assert decoded.outcomes.rows() == [
        ("o1", "delivered", kit.T0 + timedelta(seconds=900)),
        ("o2", "cancelled", kit.T0 + timedelta(seconds=100)),
        ("o3", "delivered", kit.T0 + timedelta(seconds=2000)),
    ]
    assert decoded.created.rows() == [("o1", kit.T0, "s1", "m7", "sushi")]
    assert decoded.latest == kit.T0 + timedelta(seconds=2000)
