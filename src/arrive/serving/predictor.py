"""The ETA hot path: features in one store round trip under a deadline, compiled trees,
and the heuristic with a reason code whenever the model cannot answer.

For a request (one order or a batch), :class:`EtaPredictor`:

1. answers at once with the heuristic when the kill switch is on (``kill_switch``),
   when no slot of ``max_in_flight`` frees within ``admission_wait_ms``
   (``overload``: queue-delay shedding, :mod:`arrive.serving.admission`, so latency
   stays bounded and the model keeps answering at its capacity), when no model is loaded
   (``no_model``), or while the store is known to be down (``store_unavailable``);
2. reads every order's features with ONE ``get_many`` under the deadline
   (``deadline`` when it passes: the read is left to finish in the background,
   not cancelled, so its connection stays usable, and it keeps counting as in
   flight until it ends; ``store_unavailable`` when the store fails to connect or
   answer within its own ``store_timeout_ms``, which also marks it down until a
   background ping succeeds again — a passed deadline never does);
3. assembles each order's features at ``clock.now()`` (a value older than its
   feature's TTL counts as stale); a batch works out what its orders give
   themselves (order fields, calendar, travel estimate) while the read travels;
4. answers each order whose share of stale or missing features is at most
   ``max_stale_fraction`` with the model (``stale_features`` otherwise), in one
   compiled-tree call for the whole batch (``model_error`` if it raises or
   returns a non-finite value).

With travel-time providers configured (:mod:`arrive.serving.travel`), each admitted
order's leg is asked of the provider chain beside the feature read, within its share of
the deadline; the answer goes in the feature row as ``travel_time_provider_s`` and its
source in the answer's ``travel_source`` (``builtin`` whenever the heuristic answers).

Every answer is counted in :mod:`arrive.monitoring.metrics` and appended to the
prediction log (:mod:`arrive.serving.record`). Nothing here raises for the conditions
above; a request that raises anyway (the service answers 5xx) is logged too, with the
variant and version each of its orders was assigned and the error's class, for the
rollout guardrails' error rate. The predictor's background jobs live in
:mod:`arrive.serving.background`, its wiring from settings in :mod:`arrive.serving.wiring`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

from arrive.clock import Clock
from arrive.errors import FeatureStoreUnavailable
from arrive.features.online.reader import OrderFeatures, watermark_us
from arrive.features.spec import FeatureScalar
from arrive.monitoring import metrics
from arrive.monitoring.prediction_log import PredictionLog
from arrive.providers.base import TravelTime
from arrive.schema.eta import EtaAnswer, FallbackReason, Health, ReloadAnswer, Variant
from arrive.schema.events import OrderCreated
from arrive.serving.admission import Admission
from arrive.serving.background import Background, StoreWatch
from arrive.serving.compiled import FloatArray, RowEncoder
from arrive.serving.control import Control
from arrive.serving.feeder import ReplayFeeder
from arrive.serving.health import health, readiness
from arrive.serving.record import Failure, Recorder
from arrive.serving.reloads import Reloads
from arrive.serving.routing import RolloutRouting, Route
from arrive.serving.settings import PredictorConfig
from arrive.serving.shadow import ShadowJob, ShadowQueue
from arrive.serving.slot import HeuristicAnswer, ModelSlot, ServedModel
from arrive.serving.travel import FEATURE as TRAVEL_FEATURE
from arrive.serving.travel import Started, TravelLookup
from arrive.store.base import AsyncOnlineStore, FeatureRow
from arrive.store.memory import AsyncInMemoryStore

logger = logging.getLogger(__name__)
_OVERLAP_MIN: Final = 8
"""Orders from which a request works out their own features while the store answers."""
_SEND_TURNS: Final = 2
"""Event-loop turns a read takes to reach the socket (its task starts, then the
store's connection writes the turn's commands)."""


@dataclass(frozen=True, slots=True)
class _Read:
    """The rows one version scored: its encoder's matrix, and each order's row in it."""

    encoder: RowEncoder
    matrix: FloatArray
    row: dict[int, int]


@dataclass(frozen=True, slots=True)
class _Shadowed:
    """What a rollout's other version scores once the answers are recorded."""

    route: Route
    control: ServedModel
    reads: dict[str, _Read]
    """By the variant that answered (``control``, ``candidate``)."""
    features: list[OrderFeatures]


class Scored(NamedTuple):
    """Answers, the features each was given (None when none were read), and the shadow
    work of a rollout."""

    answers: list[EtaAnswer]
    values: list[dict[str, FeatureScalar]] | None = None
    shadow: _Shadowed | None = None


class EtaPredictor:
    """The :class:`~arrive.schema.eta.Predictor` of the service.

    Args:
        slot: the served model (reloaded by :meth:`start`'s background task).
        store: the online feature store.
        clock: features are read as of ``clock.now()``.
        config: limits and intervals.
        log: the prediction log, or None.
        feeder: the embedded replay feeding ``store``, started by :meth:`start`.
        control: the kill switch and reload count; default those of this process only.
        routing: follows the registry's rollout (None: no rollouts here).
        shadow: the shadow-scoring queue of a rollout (None: no shadow scoring).
        travel: the travel-time providers; None: the built-in estimate only, no call.
    """

    def __init__(
        self,
        slot: ModelSlot,
        store: AsyncOnlineStore,
        clock: Clock,
        config: PredictorConfig,
        *,
        log: PredictionLog | None = None,
        feeder: ReplayFeeder | None = None,
        control: Control | None = None,
        routing: RolloutRouting | None = None,
        shadow: ShadowQueue | None = None,
        travel: TravelLookup | None = None,
    ) -> None:
        self.slot = slot
        self.store = store
        self.clock = clock
        self.config = config
        self.log = log
        self.feeder = feeder
        self.control = control or Control()
        self.in_flight = 0
        self.admission = Admission(
            clock,
            config.max_in_flight,
            config.admission_wait_s,
            config.max_queued,
            target_s=config.deadline_s / 2,
        )
        self.watch = StoreWatch(store)
        self.reloads = Reloads(slot, self.control)
        self.routing = routing
        self.shadow = shadow
        self.background = Background(
            slot, self.watch, self.reloads, log, feeder, routing=routing, shadow=shadow
        )
        self._late: set[asyncio.Future[list[FeatureRow | None]]] = set()
        self._inline = type(store) is AsyncInMemoryStore
        self.recorder = Recorder(log)
        self.travel = travel

    # -- the Predictor protocol ---------------------------------------------------------

    async def predict(
        self, orders: Sequence[OrderCreated], request_ids: Sequence[str]
    ) -> list[EtaAnswer]:
        """See :meth:`arrive.schema.eta.Predictor.predict`.

        Raises:
            ValueError: ``orders`` and ``request_ids`` differ in length (a caller bug).
        """
        if len(orders) != len(request_ids):
            raise ValueError(f"{len(orders)} orders but {len(request_ids)} request ids")
        started = self.clock.monotonic()
        now = self.clock.now()
        try:
            if self.control.on:
                scored = Scored(self._fallback(orders, request_ids, "kill_switch"))
            elif (admitted := await self.admission.enter()) is None:
                scored = Scored(self._fallback(orders, request_ids, "overload"))
            else:
                scored = await self._admitted(orders, request_ids, now, admitted)
        except Exception as exc:  # answered 5xx: logged with the variant each was assigned
            self.recorder.failed(self._failure(orders, request_ids, exc), now, self._took(started))
            raise
        took_s = self._took(started)
        encoded = self.recorder.record(scored.answers, scored.values, now, took_s)
        if scored.shadow is not None:
            self._shadow(scored.shadow, scored.answers, encoded, now)
        return scored.answers

    def _took(self, started: float) -> float:
        took_s = self.clock.monotonic() - started
        metrics.PREDICT_SECONDS.observe(took_s)
        return took_s

    def ready(self) -> tuple[bool, str]:
        """See :meth:`arrive.schema.eta.Predictor.ready` (no IO: cached state; the
        feature store's state does not count, :func:`arrive.serving.health.readiness`)."""
        return readiness(self.slot, self.feeder)

    def health(self) -> Health:
        """See :meth:`arrive.schema.eta.Predictor.health`."""
        return health(
            self.slot,
            ready=self.ready()[0],
            store_ok=self.watch.ok,
            kill_switch=self.control.on,
            recent=self.recorder.recent.counts(),
        )

    async def reload(self) -> ReloadAnswer:
        """See :meth:`arrive.schema.eta.Predictor.reload`. Counted in the control,
        so every predictor sharing its file reloads too (within ``follow_interval_s``).
        Forced: versions refused before are checked again, and so are the stored files
        of the version serving.

        Raises:
            RegistryError: the alias's version was refused by this reload (its checksum,
                check or load failed; the message says why and what keeps serving).
            ModelNotFound: no model serves (the message says why).
        """
        return await self.reloads.admin()

    def set_kill_switch(self, on: bool) -> None:
        """See :meth:`arrive.schema.eta.Predictor.set_kill_switch`."""
        self.control.set(on)
        logger.warning("kill switch %s", "on: the heuristic answers" if on else "off")

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model, check the store, clean the prediction log's directory, start the
        replay and the background tasks (:mod:`arrive.serving.background`)."""
        await self.background.start(self.config)

    async def __aenter__(self) -> EtaPredictor:
        """:meth:`start`, for ``async with predictor:``."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """:meth:`aclose`, whatever happened inside the block."""
        await self.aclose()

    @property
    def store_ok(self) -> bool | None:
        """Whether the feature store answers (None: not checked yet)."""
        return self.watch.ok

    async def aclose(self) -> None:
        """Stop the background tasks, write the prediction log, release the store.

        Bounded: background jobs still running after ``close_timeout_s`` are cancelled
        and left behind (logged), so shutting down never hangs.
        """
        await self.background.stop(self._late, self.config.close_timeout_s)
        if self.travel is not None:
            await self.travel.aclose()

    # -- the hot path ------------------------------------------------------------------------

    async def _admitted(
        self,
        orders: Sequence[OrderCreated],
        request_ids: Sequence[str],
        now: datetime,
        admitted: float,
    ) -> Scored:
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        late = False
        asked = None
        try:
            served = self.slot.current
            if served is None:
                return Scored(self._fallback(orders, request_ids, "no_model"))
            if self.watch.ok is False:
                return Scored(
                    self._fallback(orders, request_ids, "store_unavailable", served.fallback)
                )
            if self.travel is not None:  # known at once, or asked beside the read
                asked = self.travel.start(orders, self.config.deadline_s)
            reader = served.reader
            plan = reader.plan(orders, now)
            requested = None
            if self._inline:  # the in-process store answers at once: no task, no timer
                rows: list[FeatureRow | None] | None = await self.store.get_many(plan.keys)
            else:
                started = self.clock.monotonic()
                read = asyncio.ensure_future(self.store.get_many(plan.keys))
                if len(orders) >= _OVERLAP_MIN:  # send the read, then work while it travels
                    for _ in range(_SEND_TURNS):
                        await asyncio.sleep(0)
                    requested = reader.requested(orders, plan)
                left = self.config.deadline_s - (self.clock.monotonic() - started)
                await asyncio.wait((read,), timeout=max(left, 0.0))
                if not read.done():
                    late = True
                    self._late.add(read)
                    read.add_done_callback(lambda r: self._late_read_done(r, admitted))
                    metrics.STORE_ERRORS.labels("deadline").inc()
                    return Scored(self._fallback(orders, request_ids, "deadline", served.fallback))
                rows = self._rows(read)
            if rows is None:
                return Scored(
                    self._fallback(orders, request_ids, "store_unavailable", served.fallback)
                )
            features = reader.features(orders, plan, rows, requested)
            stale = sum(1 for found in features if found.stale)
            metrics.record_freshness(plan.at_us, watermark_us(rows), stale)
            route = None if self.routing is None else self.routing.route
            if asked is None:
                return self._score(served, orders, request_ids, features, route)
            times = asked if isinstance(asked, list) else await asked
            features = [_with_travel(f, t) for f, t in zip(features, times, strict=True)]
            return self._score(served, orders, request_ids, features, route, times)
        finally:
            _drop(asked)
            if not late:  # a late read counts as in flight until it ends
                self.in_flight -= 1
                metrics.IN_FLIGHT.dec()
                self.admission.release(admitted)

    def _rows(
        self, read: asyncio.Future[list[FeatureRow | None]]
    ) -> list[FeatureRow | None] | None:
        exc = read.exception()
        if exc is None:
            return read.result()
        if isinstance(exc, FeatureStoreUnavailable):
            self.watch.down(exc)
        else:
            metrics.STORE_ERRORS.labels("error").inc()
            logger.warning("feature read failed: %s", exc)
        return None

    def _late_read_done(
        self, read: asyncio.Future[list[FeatureRow | None]], admitted: float
    ) -> None:
        self._late.discard(read)
        self.in_flight -= 1
        metrics.IN_FLIGHT.dec()
        self.admission.release(admitted)
        if read.cancelled():
            return
        exc = read.exception()
        if isinstance(exc, FeatureStoreUnavailable):  # it failed, not merely late
            self.watch.down(exc)

    def _score(
        self,
        served: ServedModel,
        orders: Sequence[OrderCreated],
        request_ids: Sequence[str],
        features: list[OrderFeatures],
        route: Route | None = None,
        times: list[TravelTime | None] | None = None,
    ) -> Scored:
        limit = self.config.max_stale_fraction * len(served.names)
        usable = [i for i, f in enumerate(features) if len(f.stale) + len(f.missing) <= limit]
        arms = None if route is None else [route.variant(order) for order in orders]
        preds, reads = self._predictions(served, usable, features, route, arms)
        answers = []
        rollout = None if route is None else route.rollout
        for i, (order, request_id, found) in enumerate(
            zip(orders, request_ids, features, strict=True)
        ):
            stale = [*found.stale, *found.missing]
            variant: Variant = self.config.variant if arms is None else arms[i]
            reason: FallbackReason
            if i not in preds:
                reason = "stale_features"
            elif (pair := preds[i]) is None or not (
                math.isfinite(pair[0]) and math.isfinite(pair[1])
            ):
                reason = "model_error"
            else:
                model = route.candidate if route is not None and variant == "candidate" else served
                source = _source(None if times is None else times[i])
                answers.append(
                    self._make(
                        order,
                        request_id,
                        *pair,
                        model.version,
                        None,
                        stale,
                        variant,
                        rollout,
                        travel_source=source,
                    )
                )
                continue
            p50, p90 = served.fallback.eta(order)
            fallback_variant: Variant = "heuristic" if arms is None else variant
            answers.append(
                self._make(
                    order, request_id, p50, p90, None, reason, stale, fallback_variant, rollout
                )
            )
        values = [found.values for found in features]
        if route is None or self.shadow is None:
            return Scored(answers, values)
        return Scored(answers, values, _Shadowed(route, served, reads, features))

    def _predictions(
        self,
        served: ServedModel,
        usable: list[int],
        features: list[OrderFeatures],
        route: Route | None,
        arms: Sequence[Variant] | None,
    ) -> tuple[dict[int, tuple[float, float] | None], dict[str, _Read]]:
        """The model's answers of the ``usable`` orders: the control's, or each arm's;
        and the rows each arm scored, by arm."""
        if route is None or arms is None:
            preds, read = self._model(served, usable, features)
            return preds, {} if read is None else {"control": read}
        reads: dict[str, _Read] = {}
        preds = {}
        for arm, model in (("control", served), ("candidate", route.candidate)):
            scored, read = self._model(model, [i for i in usable if arms[i] == arm], features)
            preds |= scored
            if read is not None:
                reads[arm] = read
        return preds, reads

    def _shadow(
        self,
        work: _Shadowed,
        answers: list[EtaAnswer],
        encoded: list[bytes | None] | None,
        now: datetime,
    ) -> None:
        """Queue the orders each version answered for the other to score later (in the
        shadow phase the control answers every order), so that every model-answered
        order of a rollout has both versions' predictions; with the rows the answering
        version scored and the features as logged, so that nothing is encoded twice."""
        if self.shadow is None:
            return
        route, features = work.route, work.features
        for answered, model in (("control", route.candidate), ("candidate", work.control)):
            scored = [
                i
                for i, answer in enumerate(answers)
                if answer.fallback is None and answer.variant == answered
            ]
            if not scored:
                continue
            read = work.reads.get(answered)
            matrix = None
            if read is not None:
                at = [read.row[i] for i in scored]
                matrix = read.matrix if len(at) == len(read.row) else read.matrix[at]
            self.shadow.offer(
                ShadowJob(
                    route.rollout,
                    model,
                    [answers[i].request_id for i in scored],
                    [answers[i].order_id for i in scored],
                    [features[i].values for i in scored],
                    now,
                    None if encoded is None else [encoded[i] for i in scored],
                    matrix,
                    None if read is None else read.encoder,
                )
            )

    def _model(
        self, served: ServedModel, rows: list[int], features: list[OrderFeatures]
    ) -> tuple[dict[int, tuple[float, float] | None], _Read | None]:
        """The ``(p50, p90)`` of the orders at ``rows`` (None each when the model raised),
        and the rows it scored (None: none)."""
        if not rows:
            return {}, None
        compiled = served.compiled
        try:
            matrix = compiled.encoder.encode([features[i].values for i in rows])
            out = compiled.predict_matrix(matrix)
        except Exception:
            logger.exception("model version %s failed to predict", served.version)
            return dict.fromkeys(rows), None
        read = _Read(compiled.encoder, matrix, {i: j for j, i in enumerate(rows)})
        pairs = zip(out[:, served.p50].tolist(), out[:, served.p90].tolist(), strict=True)
        return dict(zip(rows, pairs, strict=True)), read

    def _failure(
        self, orders: Sequence[OrderCreated], request_ids: Sequence[str], exc: Exception
    ) -> Failure:
        """The variant, version and rollout each order of a failed request was assigned
        (the rollout's assignment, else the served model; nothing when that fails too)."""
        served, route = self.slot.current, None if self.routing is None else self.routing.route
        variants: list[str] = [self.config.variant] * len(orders)
        versions: list[str | None] = [None if served is None else served.version] * len(orders)
        with contextlib.suppress(Exception):
            if route is not None and served is not None:
                variants = [route.variant(order) for order in orders]
                versions = [
                    route.candidate.version if v == "candidate" else served.version
                    for v in variants
                ]
        rollout = None if route is None else route.rollout
        return Failure(
            list(request_ids),
            [order.order_id for order in orders],
            variants,
            versions,
            [rollout] * len(orders),
            type(exc).__name__,
        )

    def _fallback(
        self,
        orders: Sequence[OrderCreated],
        request_ids: Sequence[str],
        reason: FallbackReason,
        heuristic: HeuristicAnswer | None = None,
    ) -> list[EtaAnswer]:
        source = heuristic or self.slot.fallback
        answers = []
        for order, request_id in zip(orders, request_ids, strict=True):
            p50, p90 = source.eta(order)
            answers.append(
                self._make(order, request_id, p50, p90, None, reason, [], "heuristic", None)
            )
        return answers

    def _make(
        self,
        order: OrderCreated,
        request_id: str,
        p50: float,
        p90: float,
        version: str | None,
        reason: FallbackReason | None,
        stale: list[str],
        variant: Variant,
        rollout: str | None,
        travel_source: str = "builtin",
    ) -> EtaAnswer:
        created = order.event_time.astimezone(UTC)
        return EtaAnswer(
            request_id=request_id,
            order_id=order.order_id,
            p50_s=p50,
            p90_s=p90,
            promised_at=created + timedelta(seconds=p90),
            model_version=version,
            variant=variant,
            fallback=reason,
            stale_features=stale,
            rollout=rollout,
            travel_source=travel_source,
        )


def _with_travel(found: OrderFeatures, time: TravelTime | None) -> OrderFeatures:
    """``found`` with the chain's travel time under :data:`TRAVEL_FEATURE` (no longer
    missing when the model asks for it)."""
    values = {**found.values, TRAVEL_FEATURE: None if time is None else time.seconds}
    if time is None or TRAVEL_FEATURE not in found.missing:
        return found._replace(values=values)
    missing = tuple(name for name in found.missing if name != TRAVEL_FEATURE)
    return found._replace(values=values, missing=missing)


def _drop(asked: Started | None) -> None:
    """Cancel a travel lookup a fallback made useless (the cache's fills go on, shielded)."""
    if isinstance(asked, asyncio.Future) and not asked.done():
        asked.cancel()


def _source(time: TravelTime | None) -> str:
    return "builtin" if time is None else time.source
