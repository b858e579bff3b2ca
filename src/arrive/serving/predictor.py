"""The ETA hot path: features in one store round trip under a deadline, compiled trees,
and the heuristic with a reason code whenever the model cannot answer.

For a request (one order or a batch), :class:`EtaPredictor`:

1. answers at once with the heuristic when the kill switch is on (``kill_switch``),
   when ``max_in_flight`` requests are already in progress (``overload``: load
   shedding, so latency stays bounded instead of queueing), when no model is loaded
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

Every answer is counted in :mod:`arrive.monitoring.metrics` and appended to the
prediction log. Nothing here raises for the conditions above.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from arrive import datadir
from arrive.clock import Clock, SystemClock
from arrive.errors import ConfigError, FeatureStoreUnavailable, ModelNotFound, RegistryError
from arrive.features.online.reader import OrderFeatures, watermark_us
from arrive.features.spec import FeatureScalar
from arrive.monitoring import metrics
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.registry.base import ModelRegistry
from arrive.registry.local import LocalRegistry
from arrive.schema.eta import EtaAnswer, FallbackReason, Health, ModelFinding, ReloadAnswer, Variant
from arrive.schema.events import OrderCreated
from arrive.serving.answer import RecentAnswers
from arrive.serving.feeder import ReplayFeeder
from arrive.serving.kill_switch import KillSwitch, SharedKillSwitch
from arrive.serving.settings import ServeSettings
from arrive.serving.slot import HeuristicAnswer, ModelSlot, ServedModel, SlotConfig
from arrive.store.base import AsyncOnlineStore, EntityKey, FeatureRow, OnlineStore
from arrive.store.memory import AsyncInMemoryStore, InMemoryStore

logger = logging.getLogger(__name__)
_OVERLAP_MIN: Final = 8
"""Orders from which a request works out their own features while the store answers."""
_SEND_TURNS: Final = 2
"""Event-loop turns a read takes to reach the socket (its task starts, then the
store's connection writes the turn's commands)."""
Scored = tuple[list[EtaAnswer], list[dict[str, FeatureScalar]] | None]
"""Answers, and the features each was given (None when none were read)."""


@dataclass(frozen=True)
class PredictorConfig:
    """The hot path's limits and background intervals (from :class:`ServeSettings`, which
    holds their defaults)."""

    variant: Variant
    deadline_s: float
    max_in_flight: int
    max_stale_fraction: float
    reload_interval_s: float
    store_check_interval_s: float
    log_flush_s: float
    close_timeout_s: float = 5.0
    follow_interval_s: float = 0.25
    """How often a worker checks whether another one took an admin reload."""

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> PredictorConfig:
        """The config of ``settings``."""
        return cls(
            variant=settings.alias,
            deadline_s=settings.deadline_ms / 1000.0,
            max_in_flight=settings.max_in_flight,
            max_stale_fraction=settings.max_stale_fraction,
            reload_interval_s=settings.reload_interval_s,
            store_check_interval_s=settings.store_check_interval_s,
            log_flush_s=settings.prediction_log_flush_s,
        )


class ThreadedStore:
    """A blocking :class:`OnlineStore` awaited through the event loop's thread pool."""

    def __init__(self, store: OnlineStore) -> None:
        self.store = store

    async def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`arrive.store.base.OnlineStore.get_many`."""
        return await asyncio.to_thread(self.store.get_many, keys)

    async def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`arrive.store.base.OnlineStore.put_many`."""
        await asyncio.to_thread(self.store.put_many, rows)

    async def ping(self) -> None:
        """See :meth:`arrive.store.base.OnlineStore.ping`."""
        await asyncio.to_thread(self.store.ping)

    async def close(self) -> None:
        """See :meth:`arrive.store.base.OnlineStore.close`."""
        await asyncio.to_thread(self.store.close)


def as_async(store: OnlineStore | AsyncOnlineStore) -> AsyncOnlineStore:
    """``store`` as an async store: async ones as they are, the in-memory store inline
    (it never blocks), any other blocking store through the thread pool."""
    if inspect.iscoroutinefunction(store.get_many):
        return cast(AsyncOnlineStore, store)
    if isinstance(store, InMemoryStore):
        return AsyncInMemoryStore(store)
    return ThreadedStore(cast(OnlineStore, store))


class EtaPredictor:
    """The :class:`~arrive.serving.answer.Predictor` of the service.

    Args:
        slot: the served model (reloaded by :meth:`start`'s background task).
        store: the online feature store.
        clock: features are read as of ``clock.now()``.
        config: limits and intervals.
        log: the prediction log, or None.
        feeder: the embedded replay feeding ``store``, started by :meth:`start`.
        kill_switch: default a switch of this process only.
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
        kill_switch: KillSwitch | None = None,
    ) -> None:
        self.slot = slot
        self.store = store
        self.clock = clock
        self.config = config
        self.log = log
        self.feeder = feeder
        self.kill_switch = kill_switch or KillSwitch()
        self.in_flight = 0
        self._reloads_seen = self.kill_switch.reloads
        self.store_ok: bool | None = None  # None: not checked yet
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._counters: dict[tuple[str, str], Any] = {}
        self._late: set[asyncio.Future[list[FeatureRow | None]]] = set()
        self._inline = type(store) is AsyncInMemoryStore
        self.recent = RecentAnswers()

    # -- the Predictor protocol ---------------------------------------------------------

    async def predict(
        self, orders: Sequence[OrderCreated], request_ids: Sequence[str]
    ) -> list[EtaAnswer]:
        """See :meth:`arrive.serving.answer.Predictor.predict`.

        Raises:
            ValueError: ``orders`` and ``request_ids`` differ in length (a caller bug).
        """
        if len(orders) != len(request_ids):
            raise ValueError(f"{len(orders)} orders but {len(request_ids)} request ids")
        started = self.clock.monotonic()
        now = self.clock.now()
        values: list[dict[str, FeatureScalar]] | None = None
        if self.kill_switch.on:
            answers = self._fallback(orders, request_ids, "kill_switch")
        elif self.in_flight >= self.config.max_in_flight:
            answers = self._fallback(orders, request_ids, "overload")
        else:
            answers, values = await self._admitted(orders, request_ids, now)
        self._record(answers, values, now)
        metrics.PREDICT_SECONDS.observe(self.clock.monotonic() - started)
        return answers

    def ready(self) -> tuple[bool, str]:
        """See :meth:`arrive.serving.answer.Predictor.ready` (no IO: cached state).

        The feature store's state does not count: every replica shares it, so a store
        outage would take them all out of rotation at once while each could still
        answer with the heuristic (:meth:`health` and the metrics report it)."""
        if self.slot.current is None and self.slot.fallback.heuristic is None:
            why = self.slot.last_error or "not loaded yet"
            return False, f"no model and no heuristic loaded ({why})"
        if self.feeder is not None and not self.feeder.done:
            return False, f"replaying events ({self.feeder.applied} applied)"
        return True, self.slot.note or ""

    def health(self) -> Health:
        """See :meth:`arrive.serving.answer.Predictor.health`."""
        served = self.slot.current
        recent = self.recent.counts()
        fallbacks = {reason: n for reason, n in recent.items() if reason != "none" and n}
        problems = _problems(self, served is None, recent, fallbacks)
        store = {None: "unchecked", True: "up", False: "down"}[self.store_ok]
        return Health(
            status="degraded" if problems else "ok",
            ready=self.ready()[0],
            model_version=None if served is None else served.version,
            store=store,  # type: ignore[arg-type]
            kill_switch=self.kill_switch.on,
            recent_answers=sum(recent.values()),
            recent_fallbacks=fallbacks,
            problems=problems,
        )

    async def reload(self) -> ReloadAnswer:
        """See :meth:`arrive.serving.answer.Predictor.reload`. Counted in the kill switch,
        so every predictor sharing its file reloads too (within ``follow_interval_s``).
        Forced: versions refused before are checked again, and so are the stored files
        of the version serving.

        Raises:
            RegistryError: the alias's version was refused by this reload (its checksum,
                check or load failed; the message says why and what keeps serving).
            ModelNotFound: no model serves (the message says why).
        """
        self._reloads_seen = self.kill_switch.count_reload()  # the other workers follow
        done = await asyncio.to_thread(self.slot.reload_checked, force=True)
        version, target = done.serving, done.target
        if target is not None and target in done.refused:
            raise RegistryError(
                f"version {target} refused ({done.refused[target]}); {_keeps(version, target)}"
            )
        if version is None:
            raise ModelNotFound(f"no model serves: {self.slot.last_error or 'unknown reason'}")
        findings = [
            ModelFinding(version=v, status=check.status, reason=check.reason)
            for v, check in sorted(done.checks.items(), key=lambda item: -int(item[0]))
        ]
        return ReloadAnswer(model_version=version, alias_version=target, checks=findings)

    def set_kill_switch(self, on: bool) -> None:
        """See :meth:`arrive.serving.answer.Predictor.set_kill_switch`."""
        self.kill_switch.set(on)
        logger.warning("kill switch %s", "on: the heuristic answers" if on else "off")

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model, check the store, clean the prediction log's directory, start the
        replay and the background tasks."""
        await asyncio.to_thread(self.slot.reload)
        if self.log is not None:
            await asyncio.to_thread(self.log.clean)
        await self._check_store()
        if self.feeder is not None:
            self.feeder.start()
        config = self.config
        self._every(config.store_check_interval_s, self._check_store)
        self._every(config.follow_interval_s, self._follow_reloads)
        if config.reload_interval_s > 0:
            self._every(config.reload_interval_s, self._poll_reload)
        if self.log is not None:
            self._every(config.log_flush_s, self._flush_log)

    async def __aenter__(self) -> EtaPredictor:
        """:meth:`start`, for ``async with predictor:``."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """:meth:`aclose`, whatever happened inside the block."""
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the background tasks, write the prediction log, release the store.

        Bounded: background jobs still running after ``close_timeout_s`` are cancelled
        and left behind (logged), so shutting down never hangs.
        """
        self._stopping.set()
        for read in list(self._late):  # nobody waits for these answers any more
            read.cancel()
        tasks: list[asyncio.Future[Any]] = [*self._tasks, *self._late]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.close_timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("%d background jobs did not stop in time", len(pending))
        self._tasks.clear()
        self.slot.close()
        self.kill_switch.close()
        if self.feeder is not None:
            await asyncio.to_thread(self.feeder.stop)
        if self.log is not None:
            await asyncio.to_thread(self.log.close)
        with contextlib.suppress(Exception):
            await self.store.close()

    def _every(self, interval_s: float, job: Callable[[], Awaitable[None]]) -> None:
        stopping = self._stopping

        async def loop() -> None:
            while not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), interval_s)
                if stopping.is_set():
                    return
                try:
                    await job()
                except Exception:
                    logger.exception("background task %s failed", job.__name__)

        self._tasks.append(asyncio.create_task(loop(), name=f"arrive-{job.__name__}"))

    async def _check_store(self) -> None:
        try:
            async with asyncio.timeout(max(self.config.deadline_s, 1.0)):
                await self.store.ping()
        except Exception as exc:
            if self.store_ok is not False:
                logger.warning("feature store unreachable: %s", exc)
            self._set_store(False)
            return
        if self.store_ok is False:
            logger.warning("feature store reachable again")
        self._set_store(True)

    def _set_store(self, up: bool) -> None:
        self.store_ok = up
        metrics.STORE_UP.set(1 if up else 0)

    async def _follow_reloads(self) -> None:
        """Reload (forced, as the admin call did) when another worker took an admin reload."""
        count = self.kill_switch.reloads
        if count != self._reloads_seen:
            self._reloads_seen = count
            await asyncio.to_thread(self.slot.reload, force=True)

    async def _poll_reload(self) -> None:
        await asyncio.to_thread(self.slot.reload)

    async def _flush_log(self) -> None:
        if self.log is not None:
            await asyncio.to_thread(self.log.write, self.log.take())

    # -- the hot path ------------------------------------------------------------------------

    async def _admitted(
        self, orders: Sequence[OrderCreated], request_ids: Sequence[str], now: datetime
    ) -> Scored:
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        late = False
        try:
            served = self.slot.current
            if served is None:
                return self._fallback(orders, request_ids, "no_model"), None
            if self.store_ok is False:
                unavailable = self._fallback(
                    orders, request_ids, "store_unavailable", served.fallback
                )
                return unavailable, None
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
                    read.add_done_callback(self._late_read_done)
                    metrics.STORE_ERRORS.labels("deadline").inc()
                    return self._fallback(orders, request_ids, "deadline", served.fallback), None
                rows = self._rows(read)
            if rows is None:
                unavailable = self._fallback(
                    orders, request_ids, "store_unavailable", served.fallback
                )
                return unavailable, None
            features = reader.features(orders, plan, rows, requested)
            stale = sum(1 for found in features if found.stale)
            metrics.record_freshness(plan.at_us, watermark_us(rows), stale)
            return self._score(served, orders, request_ids, features)
        finally:
            if not late:  # a late read counts as in flight until it ends
                self.in_flight -= 1
                metrics.IN_FLIGHT.dec()

    def _rows(
        self, read: asyncio.Future[list[FeatureRow | None]]
    ) -> list[FeatureRow | None] | None:
        exc = read.exception()
        if exc is None:
            return read.result()
        if isinstance(exc, FeatureStoreUnavailable):
            self._store_down(exc)
        else:
            metrics.STORE_ERRORS.labels("error").inc()
            logger.warning("feature read failed: %s", exc)
        return None

    def _late_read_done(self, read: asyncio.Future[list[FeatureRow | None]]) -> None:
        self._late.discard(read)
        self.in_flight -= 1
        metrics.IN_FLIGHT.dec()
        if read.cancelled():
            return
        exc = read.exception()
        if isinstance(exc, FeatureStoreUnavailable):  # it failed, not merely late
            self._store_down(exc)

    def _store_down(self, exc: Exception) -> None:
        metrics.STORE_ERRORS.labels("unavailable").inc()
        if self.store_ok is not False:
            logger.warning("feature store unavailable, answering with the heuristic: %s", exc)
        self._set_store(False)

    def _score(
        self,
        served: ServedModel,
        orders: Sequence[OrderCreated],
        request_ids: Sequence[str],
        features: list[OrderFeatures],
    ) -> Scored:
        limit = self.config.max_stale_fraction * len(served.names)
        usable = [i for i, f in enumerate(features) if len(f.stale) + len(f.missing) <= limit]
        preds = self._model(served, [features[i].values for i in usable]) if usable else None
        by_order = dict(zip(usable, range(len(usable)), strict=True))
        answers = []
        for i, (order, request_id, found) in enumerate(
            zip(orders, request_ids, features, strict=True)
        ):
            stale = [*found.stale, *found.missing]
            row = by_order.get(i)
            pair = None if row is None or preds is None else preds[row]
            reason: FallbackReason
            if row is None:
                reason = "stale_features"
            elif pair is None or not (math.isfinite(pair[0]) and math.isfinite(pair[1])):
                reason = "model_error"
            else:
                answers.append(self._make(order, request_id, *pair, served.version, None, stale))
                continue
            p50, p90 = served.fallback.eta(order)
            answers.append(self._make(order, request_id, p50, p90, None, reason, stale))
        return answers, [found.values for found in features]

    def _model(
        self, served: ServedModel, rows: list[dict[str, FeatureScalar]]
    ) -> list[tuple[float, float]] | None:
        try:
            out = served.compiled.predict(rows)
        except Exception:
            logger.exception("model version %s failed to predict", served.version)
            return None
        return list(zip(out[:, served.p50].tolist(), out[:, served.p90].tolist(), strict=True))

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
            answers.append(self._make(order, request_id, p50, p90, None, reason, []))
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
    ) -> EtaAnswer:
        created = order.event_time.astimezone(UTC)
        return EtaAnswer(
            request_id=request_id,
            order_id=order.order_id,
            p50_s=p50,
            p90_s=p90,
            promised_at=created + timedelta(seconds=p90),
            model_version=version,
            variant=self.config.variant if reason is None else "heuristic",
            fallback=reason,
            stale_features=stale,
        )

    def _record(
        self,
        answers: list[EtaAnswer],
        values: list[dict[str, FeatureScalar]] | None,
        now: datetime,
    ) -> None:
        """Count ``answers`` (one increment per variant and reason) and log each with the
        features it was given (``values``, None for answers made without reading any)."""
        counts = Counter((answer.variant, answer.fallback or "none") for answer in answers)
        for key, count in counts.items():
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = metrics.PREDICTIONS.labels(*key)
            counter.inc(count)
            self.recent.add(key[1], count)
        if self.log is not None:
            self.log.extend(
                Predictions(
                    [answer.request_id for answer in answers],
                    [answer.order_id for answer in answers],
                    now,
                    [answer.variant for answer in answers],
                    [answer.model_version for answer in answers],
                    [None] * len(answers) if values is None else values,
                    [answer.p50_s for answer in answers],
                    [answer.p90_s for answer in answers],
                    [answer.fallback for answer in answers],
                )
            )


_DEGRADED_SHARE: Final = 0.2
"""Share of recent answers from the heuristic above which health reports a problem."""


def _problems(
    predictor: EtaPredictor, no_model: bool, recent: Counter[str], fallbacks: dict[str, int]
) -> list[str]:
    problems = []
    if no_model:
        why = predictor.slot.last_error or "not loaded yet"
        problems.append(f"no model serves ({why}); the heuristic answers")
    if predictor.store_ok is False:
        problems.append("feature store unreachable; the heuristic answers")
    if predictor.kill_switch.on:
        problems.append("kill switch on; the heuristic answers")
    total = sum(recent.values())
    if total and sum(fallbacks.values()) > _DEGRADED_SHARE * total:
        top = max(fallbacks, key=fallbacks.__getitem__)
        problems.append(
            f"{sum(fallbacks.values())} of the last {total} answers from the heuristic "
            f"(mostly {top})"
        )
    return problems


def _keeps(version: str | None, target: str) -> str:
    if version is None:
        return "the heuristic answers"
    if version == target:
        return f"version {version} keeps serving from the copy loaded earlier (a restart would not)"
    return f"version {version} keeps serving"


def build_predictor(
    settings: ServeSettings,
    *,
    store: OnlineStore | AsyncOnlineStore | None = None,
    clock: Clock | None = None,
    registry: ModelRegistry | None = None,
) -> EtaPredictor:
    """The predictor ``settings`` describe; call ``await start()`` before serving.

    Args:
        settings: the service's settings.
        store: the feature store; default from ``settings.store_url`` (``memory``: an
            in-process store, fed by a replay of ``settings.replay_dir`` when set).
        clock: the time features are read at; default the system clock (the replay's
            time when the embedded replay feeds the store).
        registry: default a :class:`LocalRegistry` at ``settings.registry_dir``.

    Raises:
        ConfigError: ``replay_dir`` with a store other than ``memory``,
            ``no_model_p90_s`` below ``no_model_p50_s``, or (without ``registry``) a
            ``registry_dir`` that is not a directory.
        InputFileError: ``replay_dir`` has no event log.
    """
    check_settings(settings, own_store=store is not None)
    feeder = None
    if store is None:
        store, feeder = _store(settings)
    if feeder is not None and clock is None:
        clock = feeder.clock
    clock = clock or SystemClock()
    slot = ModelSlot(
        registry if registry is not None else local_registry(settings),
        SlotConfig(
            alias=settings.alias,
            backend=settings.compile_backend,
            cache_dir=settings.compile_cache_dir,
            max_lag_s=settings.max_feature_lag_s,
            default_s=(settings.no_model_p50_s, settings.no_model_p90_s),
            check_timeout_s=settings.model_check_timeout_s,
        ),
    )
    log = None
    if settings.prediction_log_dir is not None:
        log = PredictionLog(
            settings.prediction_log_dir,
            clock,
            buffer=settings.prediction_log_buffer,
            rotate_s=settings.prediction_log_rotate_s,
            retention_days=settings.prediction_log_retention_days,
        )
    config = PredictorConfig.from_settings(settings)
    switch = (
        KillSwitch()
        if settings.kill_switch_file is None
        else SharedKillSwitch(settings.kill_switch_file)
    )
    return EtaPredictor(
        slot, as_async(store), clock, config, log=log, feeder=feeder, kill_switch=switch
    )


def check_settings(settings: ServeSettings, *, own_store: bool = False) -> None:
    """The rules :func:`build_predictor` refuses ``settings`` by (no IO).

    Args:
        own_store: the caller passes its own store (then ``replay_dir`` cannot feed it).

    Raises:
        ConfigError: ``replay_dir`` with a store other than ``memory``, or
            ``no_model_p90_s`` below ``no_model_p50_s``.
    """
    if settings.no_model_p90_s < settings.no_model_p50_s:
        raise ConfigError("setting no_model_p90_s: must be at least no_model_p50_s")
    if settings.replay_dir is not None and (own_store or settings.store_url != "memory"):
        raise ConfigError("setting replay_dir: needs store_url `memory` (the in-process store)")


def check_startup(settings: ServeSettings) -> None:
    """Raise what building a predictor from ``settings`` would, so a service can refuse
    them before it starts its workers (one line, no traceback from each worker):
    :func:`check_settings`, and the files it opens.

    Raises:
        ConfigError: as :func:`check_settings`, a ``registry_dir`` that is not a
            directory, or a ``kill_switch_file`` that cannot be created or mapped.
        InputFileError: ``replay_dir`` has no event log.
    """
    check_settings(settings)
    local_registry(settings)  # reads nothing; refuses a file
    if settings.kill_switch_file is not None:
        SharedKillSwitch(settings.kill_switch_file).close()  # created, as the workers share it
    if settings.replay_dir is not None:
        datadir.scan_events(settings.replay_dir)  # lazy: only finds the log


def local_registry(settings: ServeSettings) -> LocalRegistry:
    """The registry at ``settings.registry_dir``.

    Raises:
        ConfigError: naming the setting, when the path is not a directory.
    """
    try:
        return LocalRegistry(settings.registry_dir)
    except ConfigError as exc:
        raise ConfigError(f"setting registry_dir: {exc}") from None


def _store(settings: ServeSettings) -> tuple[AsyncOnlineStore, ReplayFeeder | None]:
    if settings.store_url == "memory":
        memory = InMemoryStore()
        feeder = ReplayFeeder(settings.replay_dir, memory) if settings.replay_dir else None
        return AsyncInMemoryStore(memory), feeder
    from arrive.store.redis import AsyncRedisStore, RedisStoreConfig

    timeout_s = settings.store_timeout_ms / 1000.0
    config = RedisStoreConfig(
        url=settings.store_url,
        retries=0,
        socket_timeout_s=timeout_s,
        connect_timeout_s=timeout_s,
        max_connections=settings.max_in_flight + 8,
    )
    return AsyncRedisStore(config), None
