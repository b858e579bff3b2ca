"""Admission to the model path: a concurrency cap and a queue bounded by the time spent in it.

Why (measured, ``bench/overload_bench.py``): with a fixed cap and nothing else, a request
past ``max_in_flight`` got the heuristic at once. Under a closed-loop 10x load (wrk -c640)
a shed answer costs about a third of a model answer, so its client sends the next request
at once: the workers' event loops filled with shed answers, the admitted requests waited
for loop turns until their read deadline passed (``deadline``), and the model answered
3.1 % of the requests (issue 23; 0.3 % in docs/benchmarks.md) while its capacity sat
mostly idle.

What: the cap stays (``max_in_flight``), the limit under it adapts to the measured
latency (below), and a request above it waits in a FIFO queue
instead of being shed at once, as long as it has waited at most ``admission_wait_ms``
(and the queue holds at most ``max_queued``). This is queue-delay shedding, the idea of
CoDel (Nichols & Jacobson, RFC 8289: judge a queue by the delay its items spend in it,
not by its length) as servers use it (Maurer, "Fail at Scale", ACM Queue 2015, its
"Controlled Delay" request queue): under overload the excess waits a bounded time and is
then answered cheaply, so the clients' retries slow down to the service's pace and the
model keeps answering at its capacity. Shed requests get the heuristic with reason
``overload``, as before. ``admission_wait_ms = 0`` is the old fixed cap.

No timer: a waiter's delay is checked with the service's clock when a slot frees or a
request arrives (a slot always frees within ``store_timeout_ms``: a late read ends then).
"""

from __future__ import annotations

import asyncio
from collections import deque

from arrive.clock import Clock


class Admission:
    """At most ``limit`` requests admitted at once; the rest queue for a bounded delay.

    ``limit`` adapts (AIMD on measured latency, as Netflix's concurrency-limits
    ``AIMDLimit`` and TCP congestion avoidance): a request that took longer than
    ``target_s`` from admission to release cuts it by ``backoff`` (at most once per such
    round trip), a quicker one while the slots are at least half used raises it by
    ``1 / limit`` (about one per window), never above ``cap`` nor below 1. By Little's law,
    the admitted requests' latency is the limit over the worker's throughput: a fixed cap
    sized for a fast machine makes every read late on a slow or busy one.

    Args:
        clock: the service's clock (queue delays and latencies use ``monotonic()``).
        cap: requests admitted at once at most (``max_in_flight``).
        max_wait_s: the longest a request may wait for a slot before it is shed
            (0: shed at once when no slot is free).
        max_queued: requests waiting at most; one more is shed at once.
        target_s: the admitted requests' latency to keep under (half the read deadline).
        backoff: the factor of a cut.
    """

    def __init__(
        self,
        clock: Clock,
        cap: int,
        max_wait_s: float,
        max_queued: int,
        target_s: float = float("inf"),
        backoff: float = 0.9,
    ) -> None:
        self.clock = clock
        self.cap = cap
        self.limit = float(cap)
        self.max_wait_s = max_wait_s
        self.max_queued = max_queued
        self.target_s = target_s
        self.backoff = backoff
        self.in_flight = 0
        self.shed = 0
        self._cut_at = float("-inf")
        self._waiting: deque[tuple[float, asyncio.Future[bool]]] = deque()

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return sum(1 for _, waiter in self._waiting if not waiter.done())

    def _free(self) -> bool:
        return self.in_flight < max(1, int(self.limit))

    async def enter(self) -> float | None:
        """Wait for a slot: its admission time once admitted (pass it to :meth:`release`
        when done), None when shed (no free slot, and the queue is full or waited too long)."""
        now = self.clock.monotonic()
        self._drop_stale(now)
        if self._free() and not self._waiting:
            self.in_flight += 1
            return now
        if self.max_wait_s <= 0 or len(self._waiting) >= self.max_queued:
            self.shed += 1
            return None
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((now, waiter))
        try:
            admitted = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release(None)  # admitted, then cancelled before it ran: pass the slot on
            raise
        return self.clock.monotonic() if admitted else None

    def release(self, admitted_at: float | None) -> None:
        """A request admitted at ``admitted_at`` (:meth:`enter`'s answer) is done: the limit
        learns from its latency, and its slot goes to the next waiter."""
        self.in_flight -= 1
        now = self.clock.monotonic()
        if admitted_at is not None:
            self._learn(now, now - admitted_at)
        self._drop_stale(now)
        while self._waiting and self._free():
            _, waiter = self._waiting.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                self.in_flight += 1
                waiter.set_result(True)

    def _learn(self, now: float, latency: float) -> None:
        if latency > self.target_s:
            if now - self._cut_at > latency:  # at most one cut per round trip
                self.limit = max(1.0, self.limit * self.backoff)
                self._cut_at = now
        elif 2 * (self.in_flight + 1) >= self.limit:
            self.limit = min(float(self.cap), self.limit + 1.0 / self.limit)

    def _drop_stale(self, now: float) -> None:
        """Shed the waiters at the head that have waited longer than ``max_wait_s``."""
        while self._waiting and now - self._waiting[0][0] > self.max_wait_s:
            _, waiter = self._waiting.popleft()
            if not waiter.done():
                self.shed += 1
                waiter.set_result(False)
