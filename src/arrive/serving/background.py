"""What a predictor does besides answering: its start, its background jobs (store checks,
model reloads, following other workers' admin reloads, prediction-log flushes) and its
bounded shutdown.

:class:`StoreWatch` holds whether the feature store answers: a background ping sets
it, a failed read marks it down (:mod:`arrive.serving.predictor` answers with the
heuristic meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from arrive.monitoring import metrics
from arrive.monitoring.prediction_log import PredictionLog
from arrive.serving.feeder import ReplayFeeder
from arrive.serving.reloads import Reloads
from arrive.serving.routing import RolloutRouting
from arrive.serving.settings import PredictorConfig
from arrive.serving.shadow import ShadowQueue
from arrive.serving.slot import ModelSlot
from arrive.store.base import AsyncOnlineStore

logger = logging.getLogger(__name__)


class StoreWatch:
    """Whether ``store`` answers: ``ok`` is None until checked."""

    def __init__(self, store: AsyncOnlineStore) -> None:
        self.store = store
        self.ok: bool | None = None

    async def check(self, timeout_s: float) -> None:
        """Ping the store; up when it answers within ``timeout_s``, down otherwise."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.store.ping()
        except Exception as exc:
            if self.ok is not False:
                logger.warning("feature store unreachable: %s", exc)
            self._set(False)
            return
        if self.ok is False:
            logger.warning("feature store reachable again")
        self._set(True)

    def down(self, exc: Exception) -> None:
        """Mark the store down after a read failed with ``exc`` (counted)."""
        metrics.STORE_ERRORS.labels("unavailable").inc()
        if self.ok is not False:
            logger.warning("feature store unavailable, answering with the heuristic: %s", exc)
        self._set(False)

    def _set(self, up: bool) -> None:
        self.ok = up
        metrics.STORE_UP.set(1 if up else 0)


class Background:
    """A predictor's start, background jobs and shutdown.

    Args:
        slot: the served model.
        watch: the feature store's state.
        reloads: follows the admin reloads of other workers.
        log: the prediction log, or None.
        feeder: the embedded replay feeding the store, or None.
        routing: follows the registry's rollout (every ``follow_interval_s``), or None.
        shadow: the shadow queue, consumed by a task of its own, or None.
    """

    def __init__(
        self,
        slot: ModelSlot,
        watch: StoreWatch,
        reloads: Reloads,
        log: PredictionLog | None,
        feeder: ReplayFeeder | None,
        *,
        routing: RolloutRouting | None = None,
        shadow: ShadowQueue | None = None,
    ) -> None:
        self.slot = slot
        self.watch = watch
        self.reloads = reloads
        self.log = log
        self.feeder = feeder
        self.routing = routing
        self.shadow = shadow
        self.tasks: list[asyncio.Task[None]] = []
        self._shadow_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self, config: PredictorConfig) -> None:
        """Load the model, check the store, clean the prediction log's directory, start the
        replay and the background jobs at ``config``'s intervals."""
        await asyncio.to_thread(self.slot.reload)
        if self.log is not None:
            await asyncio.to_thread(self.log.clean)
        ping_timeout_s = max(config.deadline_s, 1.0)

        async def check_store() -> None:
            await self.watch.check(ping_timeout_s)

        await check_store()
        if self.feeder is not None:
            self.feeder.start()
        self._every(config.store_check_interval_s, check_store)
        self._every(config.follow_interval_s, self.reloads.follow)
        if self.routing is not None:
            await self.follow_rollout()
            self._every(config.follow_interval_s, self.follow_rollout)
        if self.shadow is not None:
            self._shadow_task = asyncio.create_task(self.shadow.run(), name="arrive-shadow")
        if config.reload_interval_s > 0:
            self._every(config.reload_interval_s, self._poll_reload)
        if self.log is not None:
            self._every(config.log_flush_s, self._flush_log)

    async def stop(self, late: Collection[asyncio.Future[Any]], timeout_s: float) -> None:
        """Stop the background jobs and cancel the ``late`` reads, waiting at most
        ``timeout_s`` for them (those still running are cancelled and left behind,
        logged), then release the model, the control, the replay, the log and the store.
        """
        self._stopping.set()
        if self._shadow_task is not None:  # waiting shadow work is dropped
            self._shadow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._shadow_task
            self._shadow_task = None
        for read in list(late):  # nobody waits for these answers any more
            read.cancel()
        tasks: list[asyncio.Future[Any]] = [*self.tasks, *late]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("%d background jobs did not stop in time", len(pending))
        self.tasks.clear()
        self.slot.close()
        if self.routing is not None:
            self.routing.close()
        self.reloads.control.close()
        if self.feeder is not None:
            await asyncio.to_thread(self.feeder.stop)
        if self.log is not None:
            await asyncio.to_thread(self.log.close)
        with contextlib.suppress(Exception):
            await self.watch.store.close()

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

        self.tasks.append(asyncio.create_task(loop(), name=f"arrive-{job.__name__}"))

    async def follow_rollout(self) -> None:
        """Follow the registry's rollout: load or drop the candidate (in a thread)."""
        if self.routing is not None:
            await asyncio.to_thread(self.routing.follow)

    async def _poll_reload(self) -> None:
        await asyncio.to_thread(self.slot.reload)

    async def _flush_log(self) -> None:
        if self.log is not None:
            await asyncio.to_thread(self.log.write, self.log.take())
