"""The service's recent answers, counted by fallback reason (for ``/healthz``).

What the service answers is declared in :mod:`arrive.schema.eta`.
"""

from __future__ import annotations

from collections import Counter


class RecentAnswers:
    """Answers by fallback reason (``none`` for the model's) over the last ``size`` to
    ``2 * size`` answers: two windows, the older dropped when the newer fills."""

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self.current: Counter[str] = Counter()
        self.previous: Counter[str] = Counter()
        self._filled = 0

    def add(self, reason: str, count: int) -> None:
        """Count ``count`` answers with ``reason``."""
        self.current[reason] += count
        self._filled += count
        if self._filled >= self.size:
            self.previous, self.current, self._filled = self.current, Counter(), 0

    def counts(self) -> Counter[str]:
        """The recent answers by reason."""
        return self.previous + self.current
