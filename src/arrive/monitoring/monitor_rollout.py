"""The monitor's side of a rollout: judge the candidate on joined outcomes, then act.

:class:`RolloutWatch` keeps the joined rows (:data:`arrive.monitoring.join.CLOSED`) of the
active rollout's two versions since its current phase began (shadow or canary step),
and every ``interval_s`` of the monitor's clock:

1. reads the rollout (the store's cheap ``current()``; none active: nothing to do);
2. hands every row of the two versions since the phase began, plus the rows joined in
   windows not closed yet, to :func:`arrive.rollout.guardrails.evaluate` (a growing
   sample: the confidence sequences are valid at every look);
3. applies the verdict through :meth:`arrive.rollout.control.Rollouts.apply`: a breach
   rolls back, a pass with the phase's minimum orders and time moves to the next step
   (from the last one the candidate becomes ``production``), anything else holds.

Without evidence nothing moves: a monitor that is down, or that joins no candidate row,
leaves the rollout at its step (the serving side keeps the split it reads), and
``arrive_rollout_idle_intervals`` / the ``RolloutStalled`` alert say so.

:class:`RolloutMetrics` shows the state and the last verdict at each scrape.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import polars as pl
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from arrive.clock import Clock
from arrive.errors import ConfigError, InternalError, RolloutConflict, RolloutRefused
from arrive.monitoring.join import CLOSED
from arrive.rollout.control import Rollouts
from arrive.rollout.guardrails import Guardrails, Verdict, evaluate
from arrive.rollout.state import Rollout

logger = logging.getLogger(__name__)

DECISIONS: Final = ("advanced", "promoted", "rolled_back")
"""The ``decision`` label of ``arrive_rollout_decisions_total``."""
ACTIONS: Final = ("hold", "pass", "breach")


@dataclass(frozen=True)
class RolloutSettings:
    """How often the monitor judges the rollout, and the guardrails' limits.

    Raises:
        ConfigError: ``interval_s`` is not positive.
    """

    interval_s: float = 60.0
    rails: Guardrails = field(default_factory=Guardrails)

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ConfigError(f"rollout interval_s: must be > 0 seconds, got {self.interval_s}")


@dataclass(frozen=True)
class Seen:
    """What one evaluation found: the rollout after it, the verdict (None when no
    rollout is active) and the decision taken (None: held)."""

    rollout: Rollout | None
    verdict: Verdict | None = None
    decision: str | None = None


class RolloutWatch:
    """Judges and moves the registry's active rollout (see the module docstring).

    Attributes:
        rows: the held joined rows of closed windows (a checkpoint keeps them).
        metrics: the collector to register on the monitor's metrics registry.
    """

    def __init__(self, rollouts: Rollouts, clock: Clock, settings: RolloutSettings) -> None:
        self.rollouts = rollouts
        self.clock = clock
        self.settings = settings
        self.rows = pl.DataFrame(schema=CLOSED)
        self.metrics = RolloutMetrics()
        self._last: datetime | None = None
        self._candidate_rows = 0

    def add(self, closed: pl.DataFrame) -> None:
        """Hold the rows of closed windows that belong to the active rollout's phase."""
        rollout = self.rollouts.store.current()
        if rollout is None or not rollout.active or closed.is_empty():
            return
        rows = _of_phase(closed.select(CLOSED.names()), rollout)
        if not rows.is_empty():
            self.rows = pl.concat([_of_phase(self.rows, rollout), rows])

    def due(self) -> bool:
        """An evaluation interval has passed since the last evaluation (or none ran)."""
        if self._last is None:
            return True
        return self.clock.now() - self._last >= timedelta(seconds=self.settings.interval_s)

    def evaluate(self, open_rows: pl.DataFrame) -> Seen:
        """Judge the active rollout on the held rows and ``open_rows`` (joined rows of
        windows not closed yet) and apply the verdict."""
        self._last = self.clock.now()
        rollout = self.rollouts.store.current()
        if rollout is None or not rollout.active:
            self.rows = self.rows.clear()
            self.metrics.show(rollout)
            return Seen(rollout)
        self.rows = _of_phase(self.rows, rollout)
        fresh = _of_phase(open_rows.select(CLOSED.names()), rollout)
        rows = pl.concat([self.rows, fresh])
        verdict = evaluate(rows, rollout.control, rollout.candidate, self.settings.rails)
        orders = int(verdict.figures["orders_candidate"])
        idle = orders <= self._candidate_rows
        self._candidate_rows = orders
        decision, after = self._apply(rollout, verdict, orders)
        if decision is not None:
            self._candidate_rows = 0
        self.metrics.show(after, verdict, decision, idle=idle)
        return Seen(after, verdict, decision)

    def _apply(
        self, rollout: Rollout, verdict: Verdict, orders: int
    ) -> tuple[str | None, Rollout | None]:
        try:
            moved = self.rollouts.apply(verdict, orders=orders)
        # a command won the race, or the registry turned read-only: judged again next time
        except (RolloutConflict, RolloutRefused, InternalError) as exc:
            logger.warning(
                "rollout %s: verdict %s not applied: %s", rollout.id, verdict.action, exc
            )
            return None, self.rollouts.store.current()
        if moved is None:
            return None, rollout
        done = moved.rollout
        decision = {"rolled_back": "rolled_back", "done": "promoted"}.get(done.phase, "advanced")
        logger.warning(
            "rollout %s: %s → %s (%s)", done.id, moved.entry.source, done.label, verdict.reason
        )
        return decision, done


def _of_phase(rows: pl.DataFrame, rollout: Rollout) -> pl.DataFrame:
    """The rows of ``rollout``'s two versions predicted since its phase began."""
    return rows.filter(
        pl.col("version").is_in([rollout.control, rollout.candidate])
        & (pl.col("time") >= rollout.phase_started_at)
    )


class RolloutMetrics(Collector):
    """The rollout's gauges and counters, thread-safe (the monitor updates, Prometheus
    scrapes):

    * ``arrive_rollout_step{rollout,candidate,control,phase}``: the canary step (0-based;
      -1 in shadow and after the end);
    * ``arrive_rollout_share{rollout}``: the candidate's share of units;
    * ``arrive_rollout_active{rollout}``, ``arrive_rollout_paused{rollout}``: 1 or 0;
    * ``arrive_rollout_verdict{rollout,action}``: 1 for the last verdict's action;
    * ``arrive_rollout_guardrail{rollout,rail}``: the last verdict's figures, ``rail``
      naming the figure (``p50_mae_rel``, ``orders_candidate`` …);
    * ``arrive_rollout_idle_intervals{rollout}``: evaluations in a row that found no new
      joined candidate row;
    * ``arrive_rollout_evaluations_total{rollout,action}`` and
      ``arrive_rollout_decisions_total{rollout,decision}`` (every label from 0, so
      ``increase()`` sees the first one).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rollout: Rollout | None = None
        self._verdict: Verdict | None = None
        self._idle = 0
        self._actions: Counter[tuple[str, str]] = Counter()
        self._decisions: Counter[tuple[str, str]] = Counter()

    def show(
        self,
        rollout: Rollout | None,
        verdict: Verdict | None = None,
        decision: str | None = None,
        *,
        idle: bool = False,
    ) -> None:
        with self._lock:
            if rollout is not None and (self._rollout is None or self._rollout.id != rollout.id):
                self._verdict, self._idle = None, 0
            self._rollout = rollout
            if rollout is None or verdict is None:
                return
            self._verdict = verdict
            self._idle = self._idle + 1 if idle else 0
            self._actions[(rollout.id, verdict.action)] += 1
            if decision is not None:
                self._decisions[(rollout.id, decision)] += 1

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            rollout, verdict, idle = self._rollout, self._verdict, self._idle
            actions, decisions = Counter(self._actions), Counter(self._decisions)
        families = _families()
        if rollout is None:
            return list(families.values())
        rid = rollout.id
        labels = [rid, rollout.candidate, rollout.control, rollout.phase]
        families["step"].add_metric(labels, float(rollout.step))
        families["share"].add_metric([rid], rollout.share)
        families["active"].add_metric([rid], float(rollout.active))
        families["paused"].add_metric([rid], float(rollout.paused))
        families["idle"].add_metric([rid], float(idle))
        for action in ACTIONS:
            families["evaluations"].add_metric([rid, action], float(actions[(rid, action)]))
        for decision in DECISIONS:
            families["decisions"].add_metric([rid, decision], float(decisions[(rid, decision)]))
        if verdict is not None:
            for action in ACTIONS:
                families["verdict"].add_metric([rid, action], float(verdict.action == action))
            for name, value in sorted(verdict.figures.items()):
                families["guardrail"].add_metric([rid, name], value)
        return list(families.values())


def _families() -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
    one = ["rollout"]
    return {
        "step": GaugeMetricFamily(
            "arrive_rollout_step",
            "Canary step of the rollout (0-based; -1 in shadow and once over)",
            labels=["rollout", "candidate", "control", "phase"],
        ),
        "share": GaugeMetricFamily(
            "arrive_rollout_share", "Candidate's share of units", labels=one
        ),
        "active": GaugeMetricFamily(
            "arrive_rollout_active", "1 while the rollout is in shadow or canary", labels=one
        ),
        "paused": GaugeMetricFamily(
            "arrive_rollout_paused", "1 while the rollout is paused by hand", labels=one
        ),
        "idle": GaugeMetricFamily(
            "arrive_rollout_idle_intervals",
            "Evaluations in a row with no new joined order of the candidate",
            labels=one,
        ),
        "verdict": GaugeMetricFamily(
            "arrive_rollout_verdict",
            "1 for the action of the guardrails' last verdict",
            labels=["rollout", "action"],
        ),
        "guardrail": GaugeMetricFamily(
            "arrive_rollout_guardrail",
            "Figures of the guardrails' last verdict, by figure",
            labels=["rollout", "rail"],
        ),
        "evaluations": CounterMetricFamily(
            "arrive_rollout_evaluations",
            "Guardrail evaluations, by verdict",
            labels=["rollout", "action"],
        ),
        "decisions": CounterMetricFamily(
            "arrive_rollout_decisions",
            "Rollout transitions the guardrails made",
            labels=["rollout", "decision"],
        ),
    }
