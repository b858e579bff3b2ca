"""``arrive demo --inject FAULT``: break one thing for a stretch of the live replay and
watch the generated alert that should catch it go pending, fire, then resolve.

Every fault is an :class:`Fault`: what it breaks, for how long (replay time), and the
alert of the generated rules (:func:`arrive.monitoring.rules.cause_alerts`) it must
fire. The replay (:mod:`arrive.demo.live`) turns the fault on inside its
:class:`Injection` stretch and records samples of the alert's metric; the alert is then
evaluated on those samples as Prometheus evaluates it (:func:`alert_timeline`).

* ``store-outage`` — :class:`FaultyStore` fails every read and ping with
  :class:`~arrive.errors.FeatureStoreUnavailable` (what a lost Redis connection
  raises): the service marks the store down and answers with the heuristic.
  ``FeatureStoreDown`` on ``arrive_store_up``, scraped from the service after each answer.
* ``broken-feature`` — :class:`FaultyStore` hands the service one maintained aggregate
  (:data:`BROKEN_FEATURE`) ten minutes too high: the model answers with a wrong feature.
  ``FeatureSkew`` on ``arrive_feature_skew_mismatch_ratio``, from the monitor's production
  skew check (:mod:`arrive.demo.skew`) run over the service's prediction log.
* ``stale-ingest`` — ingest stops applying events (the service keeps answering on what
  the store holds), then catches up. ``IngestLagHigh`` on ``arrive_ingest_lag_seconds``,
  the replay's ingest watermark lag (replay time minus the engine's watermark).
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from arrive.errors import FeatureStoreUnavailable, InternalError
from arrive.monitoring.rules import cause_alerts
from arrive.monitoring.slo import load_slo
from arrive.store.base import EntityKey, FeatureRow
from arrive.store.memory import InMemoryStore

BROKEN_FEATURE: Final = "store_delivery_mean_7d"
"""The feature ``broken-feature`` breaks: the store's 7-day mean delivery time."""
BROKEN_BY_S: Final = 600.0
"""How far off (seconds) the broken feature is served."""


@dataclass(frozen=True)
class Fault:
    """What ``arrive demo --inject name`` breaks (``summary``, one line for ``--help``),
    for ``length`` of replay time, and the generated ``alert`` that must catch it."""

    name: str
    summary: str
    alert: str
    length: timedelta


FAULTS: Final = {
    fault.name: fault
    for fault in (
        Fault(
            "store-outage",
            "the feature store is down for 30 minutes (FeatureStoreDown)",
            "FeatureStoreDown",
            timedelta(minutes=30),
        ),
        Fault(
            "broken-feature",
            f"the service reads {BROKEN_FEATURE} {BROKEN_BY_S / 60:g} minutes too high "
            "for 45 minutes (FeatureSkew)",
            "FeatureSkew",
            timedelta(minutes=45),
        ),
        Fault(
            "stale-ingest",
            "ingest stops applying events for 30 minutes, then catches up (IngestLagHigh)",
            "IngestLagHigh",
            timedelta(minutes=30),
        ),
    )
}
INJECTIONS: Final = tuple(FAULTS)
"""What ``arrive demo --inject`` can break."""

_DURATION: Final = re.compile(r"^(\d+)([smh])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600}
_THRESHOLD: Final = re.compile(
    r"^(?P<agg>min|max)(?: by \((?P<by>[\w, ]*)\))? ?\((?P<metric>\w+)\) "
    r"(?P<op>==|>|<|>=|<=) (?P<limit>[-+0-9.e]+)$"
)
_OPS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Rule:
    """A generated alert of the form ``min|max [by (labels)] (metric) OP limit``, for
    ``wait``: the form every alert the demo injects for has."""

    alert: str
    expr: str
    metric: str
    aggregate: str
    by: tuple[str, ...]
    op: str
    limit: float
    wait: timedelta

    def holds(self, value: float) -> bool:
        """The condition on one aggregated value (a missing series, NaN, never holds)."""
        return not math.isnan(value) and _OPS[self.op](value, self.limit)

    def group(self, series: Mapping[str, float], label: str = "") -> dict[str, float]:
        """``series`` (the metric's value per value of ``label``) aggregated as the
        rule's ``by`` does: kept apart when ``label`` is one of its labels, else the
        ``min`` or ``max`` of all under ``""``."""
        if label and label in self.by:
            return dict(series)
        if not series:
            return {}
        pick = min if self.aggregate == "min" else max
        return {"": pick(series.values())}


@functools.cache
def alert_rule(name: str = "FeatureStoreDown") -> Rule:
    """The generated rule ``name`` (:func:`arrive.monitoring.rules.cause_alerts` of the
    default SLO file), parsed (once per process).

    Raises:
        InternalError: the rule is gone or no longer of the form :class:`Rule` evaluates.
    """
    rule = next((r for r in cause_alerts(load_slo()) if r.get("alert") == name), None)
    if rule is None:
        raise InternalError(f"the generated rules have no {name} alert")
    found = _THRESHOLD.match(str(rule["expr"]))
    wait = _DURATION.match(str(rule["for"]))
    if found is None or wait is None:
        raise InternalError(
            f"the {name} rule changed: the demo evaluates 'min|max [by (...)] (metric) OP "
            f"number' for a duration, got {rule['expr']!r} for {rule['for']!r}"
        )
    by = tuple(label.strip() for label in (found["by"] or "").split(",") if label.strip())
    return Rule(
        alert=name,
        expr=str(rule["expr"]),
        metric=found["metric"],
        aggregate=found["agg"],
        by=by,
        op=found["op"],
        limit=float(found["limit"]),
        wait=timedelta(seconds=int(wait[1]) * _UNITS[wait[2]]),
    )


Sample = tuple[datetime, dict[str, float]]
"""The alert's metric at one time: its value per series (label value, ``""`` for one)."""


@dataclass
class Injection:
    """``fault`` is on from ``start`` (inclusive) to ``end`` (exclusive), replay time;
    ``samples`` collects the alert's metric as the replay measures it. Not ``armed``, the
    fault is measured the same way but never turned on (a control run)."""

    fault: Fault
    start: datetime
    end: datetime
    samples: list[Sample] = field(default_factory=list)
    armed: bool = True

    def covers(self, moment: datetime) -> bool:
        """The fault is on at ``moment``."""
        return self.armed and self.start <= moment < self.end

    def record(self, moment: datetime, series: Mapping[str, float], label: str = "") -> None:
        """Add the metric's ``series`` at ``moment``, grouped as the alert's rule groups."""
        self.samples.append((moment, alert_rule(self.fault.alert).group(series, label)))


def place(
    names: Sequence[str],
    times: Sequence[datetime],
    length: timedelta | None = None,
    *,
    armed: bool = True,
) -> list[Injection]:
    """One stretch per fault of ``names``, each starting at an order's creation time of
    the replay (``times``, in order), spread evenly by order count (one fault: from the
    middle order), so a stretch starts where orders are, not in a quiet night; each lasts
    its fault's length (or ``length``)."""
    return [
        Injection(FAULTS[name], start, start + (length or FAULTS[name].length), armed=armed)
        for i, name in enumerate(names)
        for start in (times[len(times) * (i + 1) // (len(names) + 1)],)
    ]


@dataclass(frozen=True)
class Transition:
    """The alert entered ``state`` (``pending``, ``firing`` or ``resolved``) at ``time``."""

    time: datetime
    state: str


def alert_timeline(
    samples: Sequence[tuple[datetime, float]], wait: timedelta, holds: Callable[[float], bool]
) -> list[Transition]:
    """One alert series' transitions when its condition ``holds`` is evaluated at each
    sample, as Prometheus does at each evaluation: pending when it first holds, firing
    when it has held for ``wait``, resolved (from pending or firing) when it stops."""
    transitions: list[Transition] = []
    since: datetime | None = None
    state = "inactive"
    for moment, value in samples:
        if holds(value):
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
    """The alert of ``injection`` over the replay: its parsed ``rule`` and, per alert
    series (``""`` for the only one), its transitions on the recorded samples."""

    injection: Injection
    rule: Rule

    @property
    def series(self) -> dict[str, list[Transition]]:
        names = dict.fromkeys(key for _, values in self.injection.samples for key in values)
        return {
            name: alert_timeline(
                [(t, v.get(name, math.nan)) for t, v in self.injection.samples],
                self.rule.wait,
                self.rule.holds,
            )
            for name in names
        }

    @property
    def fired(self) -> dict[str, list[Transition]]:
        """The series that fired, with their transitions."""
        return {k: v for k, v in self.series.items() if any(t.state == "firing" for t in v)}

    @property
    def transitions(self) -> list[Transition]:
        """The transitions of the first series that fired (else of the first series)."""
        found = self.fired or self.series
        return next(iter(found.values()), [])

    @property
    def label(self) -> str:
        """The alert and its series, as Prometheus names it (``FeatureSkew{feature=...}``)."""
        name = next(iter(self.fired or self.series), "")
        if not name or not self.rule.by:
            return self.rule.alert
        return f'{self.rule.alert}{{{self.rule.by[0]}="{name}"}}'


def replay_alert(injection: Injection) -> AlertReplay:
    """:class:`AlertReplay` of ``injection`` with its fault's generated rule."""
    return AlertReplay(injection, alert_rule(injection.fault.alert))


class FaultyStore:
    """``inner`` for the service (async, inline: the in-memory store never blocks), failing
    every read and ping while ``down``, and serving ``broken`` (a feature name) off by
    :data:`BROKEN_BY_S` while set. Ingest writes to ``inner`` underneath."""

    def __init__(self, inner: InMemoryStore) -> None:
        self.inner = inner
        self.down = False
        self.broken: str | None = None

    async def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        self._check()
        rows = self.inner.get_many(keys)
        return rows if self.broken is None else [self._break(row) for row in rows]

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

    def _break(self, row: FeatureRow | None) -> FeatureRow | None:
        found = None if row is None or self.broken is None else row.get(self.broken)
        if row is None or found is None or not isinstance(found.value, float):
            return row
        return {**row, str(self.broken): found._replace(value=found.value + BROKEN_BY_S)}


BREAKS_FEATURES: Final = frozenset({"broken-feature", "stale-ingest"})
"""Faults under which the model answers on wrong features on purpose."""


def broken_orders(answers: pl.DataFrame, injections: Sequence[Injection]) -> list[str]:
    """The orders of ``answers`` created while a fault of :data:`BREAKS_FEATURES` was on:
    the model answered them on features broken on purpose, so they are left out of the
    online-equals-offline comparison."""
    created = pl.col("created_at")
    inside = [
        created.is_between(i.start, i.end, closed="left")
        for i in injections
        if i.armed and i.fault.name in BREAKS_FEATURES
    ]
    if not inside:
        return []
    return answers.filter(pl.any_horizontal(inside)).get_column("order_id").to_list()
