"""Admission to the model path: a concurrency cap and a queue bounded by the time spent in it.

Why (measured, ``bench/overload_bench.py``): with a fixed cap and nothing else, a request
past ``max_in_flight`` got the heuristic at once. Under a closed-loop 10x load (wrk -c640)
a shed answer costs about a third of a model answer, so its client sends the next request
at once: the workers' event loops filled with shed answers, the admitted requests waited
for loop turns until their read deadline passed (``deadline``), and the model answered
about 3 % of the requests while its capacity sat mostly idle.

What: the cap stays (``max_in_flight``), but a request above it waits in a FIFO queue
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

    Args:
        clock: the service's clock (queue delays are measured with ``monotonic()``).
        limit: requests admitted at once (the hard cap, ``max_in_flight``).
        max_wait_s: the longest a request may wait for a slot before it is shed
            (0: shed at once when the cap is reached).
        max_queued: requests waiting at most; one more is shed at once.
    """

    def __init__(self, clock: Clock, limit: int, max_wait_s: float, max_queued: int) -> None:
        self.clock = clock
        self.limit = limit
        self.max_wait_s = max_wait_s
        self.max_queued = max_queued
        self.in_flight = 0
        self.shed = 0
        self._waiting: deque[tuple[float, asyncio.Future[bool]]] = deque()

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return sum(1 for _, waiter in self._waiting if not waiter.done())

    async def enter(self) -> bool:
        """Wait for a slot: True once admitted (call :meth:`release` when done), False
        when shed (the cap is reached and the queue is full or waited too long)."""
        now = self.clock.monotonic()
        self._drop_stale(now)
        if self.in_flight < self.limit and not self._waiting:
            self.in_flight += 1
            return True
        if self.max_wait_s <= 0 or len(self._waiting) >= self.max_queued:
            self.shed += 1
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((now, waiter))
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()  # admitted, then cancelled before it ran: give the slot on
            raise

    def release(self) -> None:
        """A request admitted by :meth:`enter` is done: its slot goes to the next waiter."""
        self.in_flight -= 1
        self._drop_stale(self.clock.monotonic())
        while self._waiting and self.in_flight < self.limit:
            _, waiter = self._waiting.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                self.in_flight += 1
                waiter.set_result(True)

    def _drop_stale(self, now: float) -> None:
        """Shed the waiters at the head that have waited longer than ``max_wait_s``."""
        while self._waiting and now - self._waiting[0][0] > self.max_wait_s:
            _, waiter = self._waiting.popleft()
            if not waiter.done():
                self.shed += 1
                waiter.set_result(False)
