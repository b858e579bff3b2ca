"""The outcome join: each prediction of the log meets its order's outcome, in event time.

:class:`OutcomeJoin` holds the unjoined state as Polars frames and does no IO; the
monitor (:mod:`arrive.monitoring.monitor`) feeds it prediction-log rows and outcome
events and checkpoints :meth:`OutcomeJoin.state`. Every decision depends on event
times only, never on how the inputs were batched, so a run resumed from a checkpoint
ends exactly where an uninterrupted one does.

Rules (``H`` is the horizon):

* a prediction at ``t`` joins a delivery of its order at ``d`` when ``d <= t + H``,
  whichever of the two arrives first (an outcome before its prediction is held);
* a cancellation resolves its order's predictions: they are handed out with
  ``outcome = "cancelled"`` (and the cancellation's time as ``outcome_time``) for the
  rollout guardrails' cancellation rail; quality figures ignore them;
* the watermark ``W`` is the earlier of the two inputs' latest event times; a
  prediction with ``t + H < W`` and no outcome expires (counted) and an outcome
  with ``d + H < W`` that met no prediction is ``too_late`` when its order's
  prediction expired, else ``unknown_order``;
* a second outcome of an order already held is a ``duplicate`` (ignored);
* the window ``[s, s + window)`` of prediction times closes when ``W >= s + window + H``:
  its joined rows are handed out once, by :meth:`OutcomeJoin.advance`; a prediction
  arriving for a closed window is counted ``late_prediction`` and dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from arrive.errors import ConfigError

TIME: Final = pl.Datetime("us", "UTC")
PREDICTIONS: Final = pl.Schema(
    {
        "request_id": pl.String(),
        "order_id": pl.String(),
        "time": TIME,
        "variant": pl.String(),
        "version": pl.String(),
        "p50_s": pl.Float64(),
        "p90_s": pl.Float64(),
        "fallback": pl.String(),
        "store_history": pl.String(),
        "latency_s": pl.Float64(),
        "error": pl.String(),
    }
)
"""Prediction rows as the join takes them (see :func:`arrive.monitoring.log_reader.prepare`;
``latency_s`` and ``error`` may be left out: null)."""
OUTCOMES: Final = pl.Schema(
    {"order_id": pl.String(), "kind": pl.String(), "outcome_time": TIME, "matched": pl.Boolean()}
)
"""Held outcomes: ``kind`` is ``delivered`` or ``cancelled``."""
CREATED: Final = pl.Schema(
    {
        "order_id": pl.String(),
        "created_at": TIME,
        "store_id": pl.String(),
        "market_id": pl.String(),
        "store_category": pl.String(),
    }
)
"""Order attributes from ``order_created`` events, for segments."""
JOINED: Final = pl.Schema(
    {**PREDICTIONS, "outcome_time": TIME, "window_start": TIME, "outcome": pl.String()}
)
CLOSED: Final = pl.Schema({**JOINED, **{k: v for k, v in CREATED.items() if k != "order_id"}})
"""Joined rows of closed windows, with their order's attributes (null when unknown);
``outcome`` is ``delivered`` or ``cancelled``."""
EXPIRED: Final = pl.Schema({"order_id": pl.String(), "time": TIME})
FRAMES: Final = {
    "pending": PREDICTIONS,
    "outcomes": OUTCOMES,
    "created": CREATED,
    "joined": JOINED,
    "expired": EXPIRED,
}
RESULTS: Final = ("joined", "unknown_order", "duplicate", "too_late", "cancelled")
"""The ``result`` label of ``arrive_monitor_outcomes_total``."""


@dataclass(frozen=True, slots=True)
class JoinSettings:
    """How long to wait for an outcome, and the window of the quality figures.

    Raises:
        ConfigError: a duration is not positive (the message names the setting).
    """

    horizon_s: float = 7200.0
    window_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("horizon_s", "window_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be > 0 seconds, got {getattr(self, name)}")

    @property
    def horizon(self) -> timedelta:
        return timedelta(seconds=self.horizon_s)

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_s)


@dataclass
class JoinState:
    """Everything the join holds between two steps (what a checkpoint saves).

    Attributes:
        frames: the held rows, by name (:data:`FRAMES` gives their schemas).
        predictions_seen, outcomes_seen: the latest event time of each input.
        closed_until: the end of the last closed window (None before the first).
        counts: totals, keyed ``"outcome:<result>"``, ``"joined:<version>|<variant>"``,
            ``"expired"`` and ``"late_prediction"``.
    """

    frames: dict[str, pl.DataFrame] = field(
        default_factory=lambda: {name: pl.DataFrame(schema=s) for name, s in FRAMES.items()}
    )
    predictions_seen: datetime | None = None
    outcomes_seen: datetime | None = None
    closed_until: datetime | None = None
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def watermark(self) -> datetime | None:
        """The earlier of the two inputs' latest event times (None until both moved)."""
        if self.predictions_seen is None or self.outcomes_seen is None:
            return None
        return min(self.predictions_seen, self.outcomes_seen)


class OutcomeJoin:
    """The incremental join (see the module docstring); pure, single-threaded."""

    def __init__(self, settings: JoinSettings, state: JoinState | None = None) -> None:
        self.settings = settings
        self.state = state or JoinState()

    def add_predictions(self, rows: pl.DataFrame) -> None:
        """Take prediction rows (:data:`PREDICTIONS`); those of closed windows are dropped
        and counted ``late_prediction``."""
        if rows.is_empty():
            return
        for name in ("latency_s", "error"):  # rows of logs (or callers) without them
            if name not in rows.columns:
                rows = rows.with_columns(pl.lit(None, PREDICTIONS[name]).alias(name))
        rows = rows.select(PREDICTIONS.names()).cast(PREDICTIONS)
        state = self.state
        if state.closed_until is not None:
            late = rows.filter(pl.col("time") < state.closed_until)
            state.counts["late_prediction"] += late.height
            rows = rows.filter(pl.col("time") >= state.closed_until)
        latest = rows.get_column("time").max()
        if isinstance(latest, datetime):
            state.predictions_seen = _later(state.predictions_seen, latest)
        self._frames["pending"] = pl.concat([self._frames["pending"], rows])
        self._match()

    def add_outcomes(self, outcomes: pl.DataFrame, created: pl.DataFrame) -> None:
        """Take outcome events (``order_id``, ``kind``, ``outcome_time``) and order
        attributes (:data:`CREATED`)."""
        self._add_created(created)
        if not outcomes.is_empty():
            self._add_outcomes(outcomes.select("order_id", "kind", "outcome_time"))
            self._match()

    def saw_events_until(self, moment: datetime) -> None:
        """The outcome source has delivered its events up to ``moment`` (any type)."""
        self.state.outcomes_seen = _later(self.state.outcomes_seen, moment)

    def advance(self) -> pl.DataFrame:
        """Hand out the joined rows of the windows the watermark closed (:data:`CLOSED`;
        empty when none closed), then expire what it has passed."""
        watermark = self.state.watermark
        if watermark is None:
            return pl.DataFrame(schema=CLOSED)
        cutoff = watermark - self.settings.horizon
        closed = self._close(cutoff)
        self._expire(cutoff)
        return closed

    def open_rows(self) -> pl.DataFrame:
        """The joined rows of windows not closed yet (:data:`CLOSED`): each is final (an
        order's first outcome decides), and :meth:`advance` hands it out once its window
        closes."""
        joined = self._frames["joined"]
        return joined.join(self._frames["created"], on="order_id", how="left").select(
            CLOSED.names()
        )

    def created(self) -> pl.DataFrame:
        """The order attributes held (:data:`CREATED`)."""
        return self._frames["created"]

    @property
    def _frames(self) -> dict[str, pl.DataFrame]:
        return self.state.frames

    def _add_created(self, created: pl.DataFrame) -> None:
        if created.is_empty():
            return
        rows = created.select(CREATED.names()).cast(CREATED)
        merged = pl.concat([self._frames["created"], rows])
        self._frames["created"] = merged.unique("order_id", keep="first", maintain_order=True)

    def _add_outcomes(self, outcomes: pl.DataFrame) -> None:
        held = self._frames["outcomes"]
        fresh = outcomes.unique("order_id", keep="first", maintain_order=True).join(
            held.select("order_id"), on="order_id", how="anti"
        )
        counts = self.state.counts
        counts["outcome:duplicate"] += outcomes.height - fresh.height
        cancelled = int((fresh.get_column("kind") == "cancelled").sum())
        counts["outcome:cancelled"] += cancelled
        fresh = fresh.with_columns(matched=pl.lit(value=False))
        self._frames["outcomes"] = pl.concat([held, fresh.cast(OUTCOMES)])

    def _match(self) -> None:
        """Join pending predictions to held outcomes within the horizon."""
        pending, outcomes = self._frames["pending"], self._frames["outcomes"]
        if pending.is_empty() or outcomes.is_empty():
            return
        horizon = self.settings.horizon
        pairs = pending.join(outcomes.drop("matched"), on="order_id", how="inner").filter(
            pl.col("outcome_time") <= pl.col("time") + horizon
        )
        if pairs.is_empty():
            return
        self._frames["pending"] = pending.join(
            pairs.select("request_id"), on="request_id", how="anti"
        )
        delivered = pairs.filter(pl.col("kind") == "delivered")
        newly = outcomes.filter(
            ~pl.col("matched")
            & pl.col("order_id").is_in(delivered.get_column("order_id").implode())
        )
        self.state.counts["outcome:joined"] += newly.height
        self._frames["outcomes"] = outcomes.with_columns(
            matched=pl.col("matched")
            | pl.col("order_id").is_in(pairs.get_column("order_id").implode())
        )
        self._keep_joined(pairs.rename({"kind": "outcome"}))

    def _keep_joined(self, rows: pl.DataFrame) -> None:
        every = f"{int(self.settings.window_s * 1_000_000)}us"
        rows = rows.with_columns(window_start=pl.col("time").dt.truncate(every))
        delivered = rows.filter(pl.col("outcome") == "delivered")
        for (version, variant), count in Counter(
            zip(
                delivered.get_column("version").to_list(),
                delivered.get_column("variant").to_list(),
                strict=True,
            )
        ).items():
            self.state.counts[f"joined:{version}|{variant}"] += count
        self._frames["joined"] = pl.concat([self._frames["joined"], rows.select(JOINED.names())])

    def _expire(self, cutoff: datetime) -> None:
        frames, counts = self._frames, self.state.counts
        pending = frames["pending"]
        gone = pending.filter(pl.col("time") < cutoff)
        counts["expired"] += gone.height
        frames["pending"] = pending.filter(pl.col("time") >= cutoff)
        expired = pl.concat([frames["expired"], gone.select("order_id", "time")])
        outcomes = frames["outcomes"]
        old = outcomes.filter(pl.col("outcome_time") < cutoff)
        lost = old.filter(~pl.col("matched") & (pl.col("kind") == "delivered"))
        late = int(
            lost.get_column("order_id").is_in(expired.get_column("order_id").implode()).sum()
        )
        counts["outcome:too_late"] += late
        counts["outcome:unknown_order"] += lost.height - late
        frames["outcomes"] = outcomes.filter(pl.col("outcome_time") >= cutoff)
        # an expired order can meet a too-late outcome until that outcome is itself
        # past the horizon: keep its id one horizon more
        frames["expired"] = expired.filter(pl.col("time") >= cutoff - self.settings.horizon)
        created = frames["created"]
        frames["created"] = created.filter(pl.col("created_at") >= cutoff - self.settings.horizon)

    def _close(self, cutoff: datetime) -> pl.DataFrame:
        """Windows that end at or before ``cutoff``: every prediction in them is resolved."""
        window = self.settings.window
        joined = self._frames["joined"]
        closing = pl.col("window_start") + window <= cutoff
        done = joined.filter(closing)
        self._frames["joined"] = joined.filter(~closing)
        end = _window_floor(cutoff, self.settings.window_s)
        if self.state.closed_until is None or end > self.state.closed_until:
            self.state.closed_until = end
        return done.join(self._frames["created"], on="order_id", how="left").select(CLOSED.names())


def _window_floor(moment: datetime, window_s: float) -> datetime:
    """The start of the window holding ``moment`` (windows are aligned on the epoch)."""
    step_us = int(window_s * 1_000_000)
    epoch_us = int(moment.timestamp() * 1_000_000)
    return datetime.fromtimestamp((epoch_us - epoch_us % step_us) / 1e6, tz=moment.tzinfo)


def _later(current: datetime | None, moment: datetime) -> datetime:
    return moment if current is None or moment > current else current
