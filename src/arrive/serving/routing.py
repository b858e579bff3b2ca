"""A worker's part in a model rollout: the candidate loaded beside the control, and the
variant of every request's unit.

:class:`RolloutRouting` follows the rollout store (:meth:`follow`, a background job
every ``follow_interval_s``; the store's :meth:`~arrive.rollout.store.RolloutStore.current`
is itself at most 0.25 s stale). While a rollout is active, it loads the candidate as
the model slot loads a version (checksums, model check in a child process, load,
compilation in the background: :meth:`arrive.serving.slot.ModelSlot.build`) and holds
it beside the slot's model, the control. Once it is loaded, :attr:`route` is set and
the hot path assigns each order's unit (:func:`arrive.rollout.assignment.unit_key`) to
``control`` or ``candidate`` at the step's share. When the rollout ends (done, rolled
back, aborted) the candidate is dropped; a promoted candidate then serves through the
``production`` alias as any version does.

A candidate that fails to load, to pass its check or to compile, or whose features are
not the control's (one feature read serves both), stops the rollout: it is aborted
through :class:`arrive.rollout.control.Rollouts` (actor ``serving``, the reason in the
audit log), and the control keeps answering everything. Of several workers failing at
once, one aborts; the others find it done.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Final

from arrive.errors import ConfigError, RolloutConflict, RolloutRefused
from arrive.monitoring import metrics
from arrive.rollout.assignment import Assigner, Variant, unit_key
from arrive.rollout.control import Rollouts
from arrive.rollout.state import Traffic
from arrive.schema.eta import CUSTOMER_ATTRIBUTE
from arrive.schema.events import OrderCreated
from arrive.serving.slot import ModelSlot, ServedModel

logger = logging.getLogger(__name__)

ACTOR: Final = "serving"
"""The audit log's actor when a worker stops a rollout."""


@dataclass(frozen=True, slots=True)
class Route:
    """An active rollout as the hot path uses it: its traffic, the candidate loaded,
    and the assigner of its salt."""

    traffic: Traffic
    candidate: ServedModel
    assigner: Assigner

    @property
    def rollout(self) -> str:
        return self.traffic.rollout

    def variant(self, order: OrderCreated) -> Variant:
        """``candidate`` for the orders whose unit falls below the step's share; an order
        without the unit's id (``store`` or ``market`` asked for) stays on control."""
        if self.traffic.share <= 0.0:
            return "control"
        customer = order.attributes.get(CUSTOMER_ATTRIBUTE)
        try:
            key = unit_key(
                self.traffic.unit,
                order_id=order.order_id,
                customer_id=customer if isinstance(customer, str) else None,
                store_id=order.store_id,
                market_id=order.market_id,
            )
        except ConfigError:
            return "control"
        return self.assigner.variant(key, self.traffic.share)


class RolloutRouting:
    """Follows ``rollouts``' store and holds the candidate of the active rollout.

    Args:
        rollouts: the registry's rollouts (their store is read, and written only to
            stop a rollout whose candidate fails here).
        slot: the control's slot; it also builds the candidate.
    """

    def __init__(self, rollouts: Rollouts, slot: ModelSlot) -> None:
        self.rollouts = rollouts
        self.slot = slot
        self.route: Route | None = None
        self.failed: dict[str, str] = {}
        """Why each rollout's candidate was refused here, by rollout id."""
        self._loaded: Route | None = None  # kept while the share or phase moves

    def follow(self) -> None:
        """Bring :attr:`route` in line with the stored rollout (blocking: a candidate is
        loaded here; run it in a thread)."""
        try:
            rollout = self.rollouts.store.current()
        except Exception as exc:  # unreadable: keep the last state
            logger.warning("rollout state unreadable, keeping the last: %s", exc)
            return
        traffic = None if rollout is None else rollout.traffic()
        if traffic is None or traffic.rollout in self.failed:
            self._drop()
            return
        loaded = self._loaded
        if loaded is None or loaded.traffic.rollout != traffic.rollout:
            self._drop()
            loaded = self._load(traffic)
            if loaded is None:
                return
        error = loaded.candidate.compiled.error
        if error is not None:
            self._stop(traffic, f"candidate version {traffic.candidate} failed to compile: {error}")
            return
        self._loaded = loaded
        if loaded.traffic != traffic:
            loaded = self._loaded = Route(traffic, loaded.candidate, loaded.assigner)
        self.route = loaded

    def close(self) -> None:
        """Drop the candidate (stops its compilation)."""
        self._drop()

    def _load(self, traffic: Traffic) -> Route | None:
        version = traffic.candidate
        try:
            candidate = self.slot.build(version)
        except Exception as exc:
            self._stop(traffic, f"candidate version {version} failed to load: {exc}")
            return None
        control = self.slot.current
        if control is not None and candidate.names != control.names:
            self._stop(
                traffic,
                f"candidate version {version} reads other features than the control "
                f"(version {control.version}): one feature read serves both",
            )
            return None
        candidate.compiled.start_compiling()
        metrics.ROLLOUT_CANDIDATE.labels(traffic.rollout, version).set(1)
        logger.info("rollout %s: candidate version %s loaded", traffic.rollout, version)
        route = Route(traffic, candidate, Assigner(traffic.salt))
        self._loaded = route
        return route

    def _drop(self) -> None:
        loaded, self._loaded, self.route = self._loaded, None, None
        if loaded is None:
            return
        loaded.candidate.compiled.stop()
        metrics.ROLLOUT_CANDIDATE.labels(loaded.rollout, loaded.candidate.version).set(0)
        logger.info("rollout %s over: candidate version dropped", loaded.rollout)

    def _stop(self, traffic: Traffic, reason: str) -> None:
        """Answer from the control alone, and abort the rollout (logged, audited)."""
        self.failed[traffic.rollout] = reason
        self._drop()
        logger.error("rollout %s stopped: %s", traffic.rollout, reason)
        try:
            stored = self.rollouts.status()
            if stored is None or stored.id != traffic.rollout:
                return  # another rollout since: not this worker's to stop
            self.rollouts.abort(actor=ACTOR, reason=f"{reason} (worker pid {os.getpid()})")
        except (RolloutConflict, RolloutRefused) as exc:  # another worker came first
            logger.info("rollout %s: not aborted here: %s", traffic.rollout, exc)
        except Exception as exc:  # e.g. a read-only registry: this worker still serves
            logger.warning("rollout %s: could not be aborted: %s", traffic.rollout, exc)
