"""Freshness: a stored value older than its feature's TTL reads as missing, and is counted.

A wrapper over any backend, so backends only store and the rule lives once::

    store = FreshStore(RedisStore(config), ttl_s={"store_load": 120.0}, clock=SystemClock())

A value is stale when ``clock.now() - event_time > ttl``; exactly ``ttl`` old is
still fresh. A stale value is left out of the row and adds one to its feature's
violation count. Features with no TTL (not named, and no ``default_ttl_s``) are
served as stored.
"""

from __future__ import annotations

import math
import operator
import threading
from collections import Counter
from collections.abc import Mapping, Sequence

from arrive.clock import Clock
from arrive.errors import ConfigError
from arrive.store.base import (
    AsyncOnlineStore,
    EntityKey,
    FeatureRow,
    OnlineStore,
    to_epoch_us,
)

_EVENT_TIME = operator.itemgetter(1)


class FreshnessGate:
    """Filters rows read from a store by age, counting what it leaves out.

    Args:
        ttl_s: seconds each feature stays fresh after its event time.
        clock: the source of "now" (a ManualClock in tests).
        default_ttl_s: TTL of features not in ``ttl_s``; ``None`` serves them unchecked.

    Raises:
        ConfigError: a TTL is not a positive number (``math.inf`` is allowed).

    Thread-safe.
    """

    def __init__(
        self, ttl_s: Mapping[str, float], clock: Clock, default_ttl_s: float | None = None
    ) -> None:
        for name, ttl in ttl_s.items():
            _check_ttl(f"ttl_s[{name!r}]", ttl)
        if default_ttl_s is not None:
            _check_ttl("default_ttl_s", default_ttl_s)
        self._ttl_us = {name: _whole_us(ttl) for name, ttl in ttl_s.items()}
        self._default_us = math.inf if default_ttl_s is None else _whole_us(default_ttl_s)
        self._shortest_us = min([*self._ttl_us.values(), self._default_us])
        self._clock = clock
        self._violations: Counter[str] = Counter()
        self._lock = threading.Lock()

    def filter(self, rows: list[FeatureRow | None]) -> list[FeatureRow | None]:
        """``rows`` with stale values left out (a row may become empty; ``None`` stays)."""
        now_us = to_epoch_us(self._clock.now())
        horizon_us = now_us - self._shortest_us  # from here on, fresh whatever the feature
        return [
            row
            if not row or min(map(_EVENT_TIME, row.values())) >= horizon_us
            else self._fresh(row, now_us)
            for row in rows
        ]

    def _fresh(self, row: FeatureRow, now_us: int) -> FeatureRow:
        ttl_us, default_us = self._ttl_us, self._default_us
        stale = [name for name, fv in row.items() if now_us - fv[1] > ttl_us.get(name, default_us)]
        if not stale:
            return row
        with self._lock:
            self._violations.update(stale)
        return {name: fv for name, fv in row.items() if name not in stale}

    def violations(self) -> dict[str, int]:
        """Stale values left out so far, per feature (cumulative, for a Prometheus counter)."""
        with self._lock:
            return dict(self._violations)


def _whole_us(ttl_s: float) -> float:
    """``ttl_s`` in whole µs, rounded down: ages are whole µs, so ``age > ttl`` is unchanged."""
    return math.floor(ttl_s * 1e6) if math.isfinite(ttl_s) else math.inf


def _check_ttl(where: str, ttl_s: float) -> None:
    if not (isinstance(ttl_s, int | float) and ttl_s > 0):
        raise ConfigError(f"{where}: {ttl_s!r} must be a positive number of seconds")


class FreshStore:
    """An :class:`~arrive.store.base.OnlineStore` serving only fresh values of ``inner``.

    ``get_many`` returns ``None`` for an entity with nothing stored, and a row
    without its stale features otherwise (``{}`` when all are stale: the entity is
    known but nothing about it is current). Writes go to ``inner`` unchanged.

    Args:
        inner: any backend.
        ttl_s, clock, default_ttl_s: see :class:`FreshnessGate`.
    """

    def __init__(
        self,
        inner: OnlineStore,
        ttl_s: Mapping[str, float],
        clock: Clock,
        default_ttl_s: float | None = None,
    ) -> None:
        self.inner = inner
        self.gate = FreshnessGate(ttl_s, clock, default_ttl_s)

    def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`arrive.store.base.OnlineStore.get_many`; stale values left out."""
        return self.gate.filter(self.inner.get_many(keys))

    def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`arrive.store.base.OnlineStore.put_many`."""
        self.inner.put_many(rows)

    def ping(self) -> None:
        """See :meth:`arrive.store.base.OnlineStore.ping`."""
        self.inner.ping()

    def close(self) -> None:
        """Closes ``inner``."""
        self.inner.close()

    def violations(self) -> dict[str, int]:
        """See :meth:`FreshnessGate.violations`."""
        return self.gate.violations()


class AsyncFreshStore:
    """:class:`FreshStore` over an :class:`~arrive.store.base.AsyncOnlineStore`."""

    def __init__(
        self,
        inner: AsyncOnlineStore,
        ttl_s: Mapping[str, float],
        clock: Clock,
        default_ttl_s: float | None = None,
    ) -> None:
        self.inner = inner
        self.gate = FreshnessGate(ttl_s, clock, default_ttl_s)

    async def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`FreshStore.get_many`."""
        return self.gate.filter(await self.inner.get_many(keys))

    async def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`arrive.store.base.OnlineStore.put_many`."""
        await self.inner.put_many(rows)

    async def ping(self) -> None:
        """See :meth:`arrive.store.base.OnlineStore.ping`."""
        await self.inner.ping()

    async def close(self) -> None:
        """Closes ``inner``."""
        await self.inner.close()

    def violations(self) -> dict[str, int]:
        """See :meth:`FreshnessGate.violations`."""
        return self.gate.violations()
