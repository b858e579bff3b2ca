"""Shadow scoring: a rollout's other version scores the feature vectors an answer was
given, after the answers are sent, off the hot path. In the shadow phase the candidate
scores the control's orders; at a canary step each version scores the other's, so the
guardrails compare the two on the same orders (in pairs) at every step.

The hot path only :meth:`ShadowQueue.offer`\\s a job (no IO, no model: a bounded
``put_nowait``); when the queue is full the job is dropped and counted
(``arrive_shadow_dropped_total{reason="queue_full"}``), so shadow work never delays an
answer. :meth:`ShadowQueue.run`, a task of the worker's event loop, lets jobs gather for
``linger_s`` after the first (unless a batch is already waiting), takes them (up to
:data:`BATCH` orders), scores them in compiled-tree calls of at most :data:`CHUNK` orders
and appends them to the prediction log with variant ``shadow``, the version that scored them (the
candidate's or the control's) and the rollout's id, so the monitor joins them to
outcomes like any other prediction.

Why linger and chunks: scored one request at a time, the shadow made one extra model
call per request on the event loop that answers. Gathered for ``linger_s``, a worker
scores its shadow orders a few times a second, at most :data:`CHUNK` orders a call with
requests answered between calls.

Why jobs carry the answers' matrix and JSON: a chunk's time on the event loop is what an
answer arriving meanwhile waits. Profiled, chunks of 32 one-order jobs spent three fifths
of their time appending each job to the log on its own (one ``extend`` and one metric
increment a job), a sixth encoding the features again (the matrix, then the JSON the
answer's log row already held); the trees themselves took a tenth. So a
chunk is logged in one append (rows of several requests, one time each), scored from
the rows the answering version read when this version encodes alike
(:meth:`~arrive.serving.compiled.RowEncoder.alike`; else from the values), and logged
with the answers' JSON. What shadow scoring costs the answers' p99 is measured in
docs/benchmarks.md ("Serving a rollout").
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np

from arrive.features.spec import FeatureScalar
from arrive.monitoring import metrics
from arrive.monitoring.prediction_log import PredictionLog, Predictions
from arrive.serving.compiled import CompiledModel, FloatArray, RowEncoder
from arrive.serving.slot import ServedModel

logger = logging.getLogger(__name__)

BATCH: Final = 256
"""Orders taken off the queue together at most."""
CHUNK: Final = 32
"""Orders scored in one call at most: the event loop answers requests between calls, so
one call is all an answer may wait behind."""
_ALIKE_HELD: Final = 16
"""Pairs of encoders whose likeness a queue remembers at most."""


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """Orders one version answered, with the features it was given, for ``model`` (the
    rollout's other version) to score.

    ``features`` are the values as the answers' log rows hold them (JSON, encoded once;
    None: encoded here); ``matrix`` the rows the answering version's ``encoder`` made of
    them, scored as they are when ``model`` encodes alike (None: encoded here)."""

    rollout: str
    model: ServedModel
    request_ids: Sequence[str]
    order_ids: Sequence[str]
    values: Sequence[dict[str, FeatureScalar]]
    time: datetime
    features: Sequence[bytes | None] | None = None
    matrix: FloatArray | None = None
    encoder: RowEncoder | None = None


class ShadowQueue:
    """A worker's bounded queue of shadow jobs (``capacity`` jobs) and its consumer.

    Args:
        capacity: jobs waiting at most; beyond, new jobs are dropped (counted).
        log: where shadow predictions go (None: scored and counted only).
        linger_s: how long the first job of a batch waits for others (0: none).
    """

    def __init__(self, capacity: int, log: PredictionLog | None, linger_s: float = 0.0) -> None:
        self.log = log
        self.linger_s = linger_s
        self._held = 0
        self.dropped: dict[str, int] = {"queue_full": 0, "model_error": 0}
        self.scored = 0
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(capacity)
        self._full = metrics.SHADOW_DROPPED.labels("queue_full")
        self._errors = metrics.SHADOW_DROPPED.labels("model_error")
        self._scored = metrics.SHADOW_SCORED
        self._alike_seen: dict[tuple[int, int], tuple[RowEncoder, RowEncoder, bool]] = {}

    def __len__(self) -> int:
        """Jobs waiting, with those taken and not yet scored."""
        return self._queue.qsize() + self._held

    def offer(self, job: ShadowJob) -> bool:
        """Queue ``job`` unless the queue is full (then drop it, counted by its orders)."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped["queue_full"] += len(job.order_ids)
            self._full.inc(len(job.order_ids))
            return False
        return True

    async def run(self) -> None:
        """Score jobs as they come, until cancelled."""
        while True:
            jobs = [await self._queue.get()]
            self._held = 1
            size = len(jobs[0].order_ids)
            if self.linger_s > 0 and size + self._queue.qsize() < BATCH:
                await asyncio.sleep(self.linger_s)
            while size < BATCH and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
                size += len(jobs[-1].order_ids)
            self._held = len(jobs)
            try:
                for chunk in chunks(jobs):
                    self._score(chunk)
                    self._held -= len(chunk)  # scored: no longer waiting
                    await asyncio.sleep(0)  # let requests in between chunks
            finally:
                self._held = 0

    def _score(self, jobs: list[ShadowJob]) -> None:
        """Score ``jobs`` (one model) in one call and log them in one append."""
        model = jobs[0].model
        try:
            out = self._predict(model, jobs)
            p50 = out[:, model.p50].tolist()
            p90 = out[:, model.p90].tolist()
        except Exception:
            count = sum(len(job.order_ids) for job in jobs)
            logger.exception("shadow: version %s failed to predict", model.version)
            self._drop_errors(count)
            return
        keep = [i for i in range(len(p50)) if math.isfinite(p50[i]) and math.isfinite(p90[i])]
        if len(keep) < len(p50):
            self._drop_errors(len(p50) - len(keep))
        self.scored += len(keep)
        self._scored.inc(len(keep))
        if self.log is not None and keep:
            self.log.extend(_rows(jobs, keep, p50, p90))

    def _predict(self, model: ServedModel, jobs: list[ShadowJob]) -> FloatArray:
        """The model's outputs: from the rows the answers were scored on when it encodes
        as the answering version did (no feature encoded twice), else from the values."""
        compiled = model.compiled
        if all(job.matrix is not None and self._alike(compiled, job.encoder) for job in jobs):
            matrices = [job.matrix for job in jobs if job.matrix is not None]
            return compiled.predict_matrix(
                np.concatenate(matrices) if len(jobs) > 1 else matrices[0]
            )
        return compiled.predict([values for job in jobs for values in job.values])

    def _alike(self, compiled: CompiledModel, encoder: RowEncoder | None) -> bool:
        """Whether ``compiled`` encodes rows as ``encoder`` does (remembered by pair: the
        pair is held, so an id is never reused while remembered)."""
        mine = getattr(compiled, "encoder", None)
        if encoder is None or mine is None:
            return False
        if mine is encoder:
            return True
        key = (id(mine), id(encoder))
        known = self._alike_seen.get(key)
        if known is None:
            if len(self._alike_seen) >= _ALIKE_HELD:
                self._alike_seen.clear()
            known = self._alike_seen[key] = (mine, encoder, mine.alike(encoder))
        return known[2]

    def _drop_errors(self, count: int) -> None:
        self.dropped["model_error"] += count
        self._errors.inc(count)


def chunks(jobs: list[ShadowJob]) -> list[list[ShadowJob]]:
    """``jobs`` grouped by model, each group cut into runs of about :data:`CHUNK` orders
    (a job is never split)."""
    by_model: dict[int, list[ShadowJob]] = {}
    for job in jobs:
        by_model.setdefault(id(job.model), []).append(job)
    out: list[list[ShadowJob]] = []
    for group in by_model.values():
        size = CHUNK
        for job in group:
            if size >= CHUNK:
                out.append([])
                size = 0
            out[-1].append(job)
            size += len(job.order_ids)
    return out


def _rows(
    jobs: list[ShadowJob], keep: list[int], p50: list[float], p90: list[float]
) -> Predictions:
    """The log rows of ``jobs``' orders at positions ``keep`` (the finite answers)."""
    request_ids = [r for job in jobs for r in job.request_ids]
    order_ids = [o for job in jobs for o in job.order_ids]
    times = [job.time for job in jobs for _ in job.order_ids]
    features = [f for job in jobs for f in _features(job)]
    n, model, rollout = len(keep), jobs[0].model, jobs[0].rollout
    return Predictions(
        [request_ids[i] for i in keep],
        [order_ids[i] for i in keep],
        [times[i] for i in keep],
        ["shadow"] * n,
        [model.version] * n,
        [features[i] for i in keep],
        [p50[i] for i in keep],
        [p90[i] for i in keep],
        [None] * n,
        [rollout] * n,
    )


def _features(job: ShadowJob) -> Sequence[bytes | dict[str, FeatureScalar] | None]:
    """The job's features as logged: the answers' JSON, else the values (encoded then)."""
    return job.values if job.features is None else job.features
