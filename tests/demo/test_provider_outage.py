"""``arrive demo --simulate`` / ``--inject provider-outage``: the timeline the report shows
(answers by source per phase, the breaker opening and closing) and the one-line refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from arrive.cli.main import run
from arrive.demo import providers

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class FakeVendor:
    """Records what the demo asked of the vendor (its HTTP client is tested elsewhere)."""

    url = "http://vendor.invalid"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def set_faults(self, **changes: float) -> dict[str, float]:
        self.calls.append(f"faults {changes}")
        return {}

    def clear_faults(self) -> dict[str, float]:
        self.calls.append("clear")
        return {}

    def pin_clock(self, at: datetime | None) -> None:
        self.calls.append("pin")


def test_the_vendor_goes_down_inside_the_outage_and_comes_back_after() -> None:
    timeline = providers.ProviderTimeline(providers.Outage(_at(10), _at(40)))
    vendor = FakeVendor()
    for minutes in (0, 10, 20, 40, 50):
        providers.step(vendor, timeline, _at(minutes))
    assert vendor.calls == [
        "pin",
        "pin",
        "faults {'error_rate': 1.0}",
        "pin",
        "pin",
        "clear",
        "pin",
    ]


def test_the_summary_counts_sources_by_phase_and_times_the_breaker() -> None:
    timeline = providers.ProviderTimeline(providers.Outage(_at(10), _at(40)))
    timeline.samples = [
        (_at(0), providers.VENDOR, 0.0),
        (_at(5), "cache", 0.0),
        (_at(11), "builtin", 0.0),
        (_at(12), "builtin", 1.0),
        (_at(30), "grace", 1.0),
        (_at(41), "builtin", 1.0),
        (_at(45), providers.VENDOR, 0.0),
    ]
    counts = timeline.sources()
    assert counts["before"] == {providers.VENDOR: 1, "cache": 1}
    assert counts["during"] == {"builtin": 2, "grace": 1}
    assert counts["after"] == {"builtin": 1, providers.VENDOR: 1}
    assert (timeline.breaker_opened(), timeline.breaker_closed()) == (_at(12), _at(45))
    line = providers.summary_line(timeline)
    assert "breaker open at 12:12:00, closed again at 12:45:00" in line
    assert "Travel-time providers" in providers.section(timeline)


def test_provider_outage_on_a_csv_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "orders.csv"
    csv.write_text("id\n1\n")
    code = run(
        ["demo", "--data", str(csv), "--inject", "provider-outage", "--workdir", str(tmp_path)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert "--simulate" in err
