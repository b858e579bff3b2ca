"""``arrive demo --inject store-outage``: the feature store fails for a stretch of the replay.

:class:`OutageStore` stands between the service and the replay's in-process store: while
``down`` it fails every read and ping with :class:`~arrive.errors.FeatureStoreUnavailable`,
the store protocol's own failure (what a lost Redis connection raises), so the service's
real fault handling runs: reads fail, the store is marked down (``arrive_store_up`` 0),
answers fall back to the heuristic (``store_unavailable``) until a background ping finds
the store back. Ingest keeps writing to the store underneath (only the service's reads
fail).

After every answer the replay scrapes the service's ``/metrics`` at the order's time;
:func:`alert_timeline` evaluates the ``FeatureStoreDown`` alert of the generated rules
(:func:`arrive.monitoring.rules.cause_alerts`) on those samples the way Prometheus does:
pending when its condition first holds, firing once it has held for the rule's ``for``,
resolved when it no longer holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from arrive.errors import FeatureStoreUnavailable, InternalError
from arrive.monitoring.rules import cause_alerts
from arrive.monitoring.slo import load_slo
from arrive.store.base import EntityKey, FeatureRow
from arrive.store.memory import InMemoryStore

INJECTIONS: Final = ("store-outage", "provider-outage")
"""What ``arrive demo --inject`` can break."""
ALERT: Final = "FeatureStoreDown"
CONDITION: Final = "min by (job, instance) (arrive_store_up) == 0"
OUTAGE: Final = timedelta(minutes=30)
"""How long, in replay time, the store is down (from the middle of the replay)."""
_DURATION: Final = re.compile(r"^(\d+)([smh])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600}


class OutageStore:
    """``inner`` for the service (async, inline: the in-memory store never blocks), failing
    every read and ping while ``down``."""

    def __init__(self, inner: InMemoryStore) -> None:
        self.inner = inner
        self.down = False

    async def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        self._check()
        return self.inner.get_many(keys)

    async def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        self._check()
        self.inner.put_many(rows)

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        self.inner.close()

    def _check(self) -> None:
        if self.down:
            raise FeatureStoreUnavailable("demo: store outage injected (--inject store-outage)")


@dataclass
class Outage:
    """The store is down from ``start`` (inclusive) to ``end`` (exclusive), replay time;
    ``samples`` collects ``(time, arrive_store_up)`` scraped after each answer."""

    start: datetime
    end: datetime
    samples: list[tuple[datetime, float]] = field(default_factory=list)

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def middle_outage(first: datetime, last: datetime, length: timedelta = OUTAGE) -> Outage:
    """An outage of ``length`` from the middle of the replay ``first``–``last``."""
    start = first + (last - first) / 2
    return Outage(start, start + length)


@dataclass(frozen=True)
class Transition:
    """The alert entered ``state`` (``pending``, ``firing`` or ``resolved``) at ``time``."""

    time: datetime
    state: str


def alert_rule() -> tuple[str, timedelta]:
    """The ``FeatureStoreDown`` rule's expression and ``for`` from the generated rules.

    Raises:
        InternalError: the rule is gone or its condition is not the one evaluated here.
    """
    rule = next((r for r in cause_alerts(load_slo()) if r.get("alert") == ALERT), None)
    if rule is None or rule["expr"] != CONDITION:
        raise InternalError(f"the {ALERT} rule changed: the demo evaluates {CONDITION!r}")
    found = _DURATION.match(str(rule["for"]))
    if found is None:
        raise InternalError(f"the {ALERT} rule's for {rule['for']!r} is not a duration")
    return rule["expr"], timedelta(seconds=int(found[1]) * _UNITS[found[2]])


def alert_timeline(samples: Sequence[tuple[datetime, float]], wait: timedelta) -> list[Transition]:
    """The alert's transitions when its condition (``arrive_store_up == 0``) is evaluated at
    each sample, as Prometheus does at each evaluation: pending when it first holds,
    firing when it has held for ``wait``, resolved (from pending or firing) when it stops."""
    transitions: list[Transition] = []
    since: datetime | None = None
    state = "inactive"
    for moment, value in samples:
        if value == 0:
            if since is None:
                since, state = moment, "pending"
                transitions.append(Transition(moment, state))
            if state == "pending" and moment - since >= wait:
                state = "firing"
                transitions.append(Transition(moment, state))
        elif since is not None:
            since, state = None, "inactive"
            transitions.append(Transition(moment, "resolved"))
    return transitions


@dataclass(frozen=True)
class AlertReplay:
    """The ``FeatureStoreDown`` alert over a replay with ``outage``: its rule's
    ``expr`` and ``wait`` (``for``), and its :attr:`transitions` on the scraped samples."""

    outage: Outage
    expr: str
    wait: timedelta

    @property
    def transitions(self) -> list[Transition]:
        return alert_timeline(self.outage.samples, self.wait)


def replay_alert(outage: Outage) -> AlertReplay:
    """:class:`AlertReplay` of ``outage`` with the generated rule (:func:`alert_rule`)."""
    expr, wait = alert_rule()
    return AlertReplay(outage, expr, wait)
