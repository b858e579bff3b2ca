"""``arrive demo --simulate``: the service asks the simulated vendor for travel times;
``--inject provider-outage`` takes the vendor down for a stretch of the replay.

The simulated vendor (``arrive providers serve-sim``, a child process) answers from the
simulated marketplace's own traffic; the demo pins its clock to each order's time, so it
answers for the moment the order was created. With the outage injected, the vendor's
faults are turned on through its ``/_faults`` endpoint for :data:`OUTAGE` of replay time
from the middle of the replay (every request a 503), then cleared. After each answer the
replay records the answer's ``travel_source`` and the breaker's state scraped from the
service's ``/metrics``: the report shows the breaker opening, which link of the chain
answered over time (vendor, cache, grace, built-in), and the recovery.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any, Final, Protocol

INJECTION: Final = "provider-outage"
VENDOR: Final = "simvendor"
"""The simulated vendor's provider name (the ``travel_source`` of its answers)."""
OUTAGE: Final = timedelta(minutes=30)
"""How long, in replay time, the vendor is down (from the middle of the replay)."""
PHASES: Final = ("before", "during", "after")


@dataclass(frozen=True)
class Outage:
    """The vendor is down from ``start`` (inclusive) to ``end`` (exclusive), replay time."""

    start: datetime
    end: datetime

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def middle_outage(times: Sequence[datetime], length: timedelta = OUTAGE) -> Outage:
    """An outage of ``length`` from the middle order of the replay (``times``, in order)."""
    start = times[len(times) // 2]
    return Outage(start, start + length)


class Vendor(Protocol):
    """What the demo drives of the simulated vendor (:class:`VendorProcess`)."""

    url: str

    def set_faults(self, **changes: float) -> dict[str, float]: ...

    def clear_faults(self) -> dict[str, float]: ...

    def pin_clock(self, at: datetime | None) -> None: ...


def providers_table(url: str) -> dict[str, Any]:
    """The service's ``providers`` setting for the simulated vendor at ``url``."""
    return {"travel": {VENDOR: {"kind": "osrm", "url": url, "timeout_ms": 200}}}


@dataclass
class ProviderTimeline:
    """Per answer: its time, ``travel_source`` and the vendor's breaker state (0 closed,
    1 open, 2 half-open); ``outage`` when the vendor was taken down."""

    outage: Outage | None = None
    samples: list[tuple[datetime, str, float]] = field(default_factory=list)
    down: bool = False

    def phase(self, moment: datetime) -> str:
        if self.outage is None or moment < self.outage.start:
            return "before"
        return "during" if moment < self.outage.end else "after"

    def sources(self) -> dict[str, Counter[str]]:
        """Answers by phase and source."""
        found: dict[str, Counter[str]] = {phase: Counter() for phase in PHASES}
        for moment, source, _ in self.samples:
            found[self.phase(moment)][source] += 1
        return found

    def breaker_opened(self) -> datetime | None:
        """When the breaker was first seen open after the outage started."""
        return next((t for t, _, s in self.samples if self.phase(t) != "before" and s == 1), None)

    def breaker_closed(self) -> datetime | None:
        """When the breaker was first seen closed after the outage ended."""
        return next((t for t, _, s in self.samples if self.phase(t) == "after" and s == 0), None)


def step(vendor: Vendor, timeline: ProviderTimeline, moment: datetime) -> None:
    """Before the order at ``moment``: the vendor's clock there, its faults on inside the
    outage and off after it."""
    vendor.pin_clock(moment)
    down = timeline.outage is not None and timeline.outage.covers(moment)
    if down and not timeline.down:
        vendor.set_faults(error_rate=1.0)
    elif timeline.down and not down:
        vendor.clear_faults()
    timeline.down = down


def summary_line(timeline: ProviderTimeline) -> str:
    """One line: answers by source in each phase, and when the breaker opened and closed."""
    parts = []
    for phase, counts in timeline.sources().items():
        if counts:
            shown = ", ".join(f"{source} {n}" for source, n in counts.most_common())
            parts.append(f"{phase}: {shown}")
    line = "travel time by source — " + "; ".join(parts)
    if timeline.outage is not None:
        opened, closed = timeline.breaker_opened(), timeline.breaker_closed()
        line += (
            f"; vendor down {timeline.outage.start:%H:%M}–{timeline.outage.end:%H:%M}, "
            f"breaker open {_at(opened)}, closed again {_at(closed)}"
        )
    return line


def section(timeline: ProviderTimeline) -> str:
    """The report's HTML section: answers by phase and source, the breaker's times."""
    counts = timeline.sources()
    sources = sorted({source for found in counts.values() for source in found})
    head = "".join(f"<th>{escape(source)}</th>" for source in sources)
    rows = "".join(
        f"<tr><td>{phase}</td>"
        + "".join(f"<td>{counts[phase][source]}</td>" for source in sources)
        + "</tr>"
        for phase in PHASES
        if counts[phase]
    )
    note = ""
    if timeline.outage is not None:
        note = (
            f"<p>Vendor down (every request a 503) from {timeline.outage.start:%Y-%m-%d %H:%M} "
            f"to {timeline.outage.end:%H:%M} (replay time). Breaker first seen open "
            f"{_at(timeline.breaker_opened())}, closed again {_at(timeline.breaker_closed())}. "
            "Every order was answered.</p>"
        )
    return (
        "<h2>Travel-time providers</h2>"
        f"<p>Where each answer's travel time came from (<code>travel_source</code>).</p>{note}"
        f"<table><tr><th>phase</th>{head}</tr>{rows}</table>"
    )


def _at(moment: datetime | None) -> str:
    return "never" if moment is None else f"at {moment:%H:%M:%S}"
