"""What a feature is: its declaration, and the contract of a feature group.

A feature group (one module under :mod:`arrive.features`) declares its
features once and computes them offline, point-in-time correct: for an order
created at ``t`` only events with ``event_time < t`` contribute (an observation recorded
at ``t`` for the order's own request counts too: ``Latest(inclusive=True)``). The online
update of the same features lives beside the offline computation in the same
module, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol, TypeVar, cast

import polars as pl

T = TypeVar("T")
FeatureScalar = float | str | None
Entity = Literal["order", "store", "courier", "market"]
Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class FeatureSpec:
    """One feature.

    Attributes:
        name: column name in the training set and the online store.
        entity: the entity whose state the value describes.
        kind: numeric, or categorical (handled natively by the model).
        ttl_s: how long an online value stays fresh; None for request-time values.
        description: one line for reports and docs.
        tolerance: absolute difference allowed between the online and offline values.
    """

    name: str
    entity: Entity
    kind: Kind
    ttl_s: float | None
    description: str
    tolerance: float = 1e-6


@dataclass(frozen=True)
class Latest:
    """Features that are the latest observation of one event type per entity.

    Offline: the last such event strictly before ``t`` (at or before with ``inclusive``:
    an answer recorded for the request itself) and at most ``ttl`` old.
    Online: the ingest engine stores each observation at its event time, and the
    reader's TTL rule (the features' ``ttl_s``) leaves out what is too old.

    Attributes:
        event_type: e.g. ``"weather_observation"``.
        key: the event field that keys it (e.g. ``"market_id"``).
        columns: event field → feature name.
        ttl: how long an observation stays current.
        derive: features computed from one observation's renamed values, online
            (the offline twin is the group's own expression).
        inclusive: an observation stamped at ``t`` itself counts.
    """

    event_type: str
    key: str
    columns: Mapping[str, str]
    ttl: timedelta
    derive: Callable[[Mapping[str, FeatureScalar]], dict[str, FeatureScalar]] | None = None
    inclusive: bool = False

    @property
    def entity(self) -> str:
        return self.key.removesuffix("_id")

    def offline(self, ctx: BuildContext) -> pl.DataFrame:
        """``_row`` and one column per feature, in spine order."""
        latest = ctx.latest_before(
            self.event_type, self.key, tuple(self.columns), self.ttl, inclusive=self.inclusive
        )
        return latest.rename(dict(self.columns))


class BuildContext:
    """Inputs of an offline feature build, with derived tables computed once.

    Args:
        orders: the spine, one row per order to featurise (``created_at`` is the
            as-of time); must hold ``order_id`` and ``created_at`` (UTC).
        events: the event log (columns of :data:`arrive.schema.frame.EVENT_COLUMNS`).
        local_timezone: IANA zone of the marketplace, for hour-of-day features.
        attributes: columns of ``orders`` that are the source's own context attributes.
    """

    def __init__(
        self,
        orders: pl.DataFrame,
        events: pl.LazyFrame,
        local_timezone: str = "UTC",
        attributes: tuple[str, ...] = (),
    ) -> None:
        self.orders = orders.with_row_index("_row")
        self.events = events
        self.local_timezone = local_timezone
        self.attributes = attributes
        self._memo: dict[Hashable, Any] = {}

    def memo(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, computed once per context for ``key`` (tables several groups read)."""
        if key not in self._memo:
            self._memo[key] = make()
        return cast("T", self._memo[key])

    def has_column(self, name: str) -> bool:
        """True when the spine has ``name`` with at least one non-null value."""
        return name in self.orders.columns and self.orders.get_column(name).null_count() < len(
            self.orders
        )

    @property
    def event_counts(self) -> dict[str, int]:
        """Number of events of each type in the log."""
        return self.memo("event_counts", self._event_counts)

    def _event_counts(self) -> dict[str, int]:
        counts = self.events.group_by("type").len().collect()
        return dict(zip(counts.get_column("type"), counts.get_column("len"), strict=True))

    @property
    def lifecycle(self) -> pl.DataFrame:
        """One row per order seen in the log: its entities and lifecycle times (UTC)."""
        return self.memo("lifecycle", self._lifecycle)

    def _lifecycle(self) -> pl.DataFrame:
        events = self.events.filter(pl.col("order_id").is_not_null())
        created = events.filter(pl.col("type") == "order_created").select(
            "order_id", "store_id", "market_id", "courier_id", created=pl.col("event_time")
        )
        times = events.group_by("order_id").agg(
            _first_time("order_confirmed", "confirmed"),
            _first_time("food_ready", "ready"),
            _first_time("delivered", "delivered"),
            _first_time("cancelled", "cancelled"),
        )
        return (
            created.join(times, on="order_id", how="left")
            .with_columns(terminal=pl.min_horizontal("delivered", "cancelled"))
            .collect()
        )

    def observations(self, stream: str, key: str) -> pl.DataFrame:
        """The observations of ``stream`` (see :data:`arrive.features.windows.Stream`) as
        ``key``, ``time`` and ``value``; ``key`` is an order field or a local-day key."""
        return self.memo(("observations", stream, key), lambda: self._observations(stream, key))

    def _observations(self, stream: str, key: str) -> pl.DataFrame:
        life = self.lifecycle
        if key in ("day", "market_day"):
            life = life.with_columns(self._day_keys(pl.col("created"))[key].alias(key))
        if stream == "delivery":
            return life.select(
                key, time=pl.col("delivered"), value=_seconds("created", "delivered")
            )
        if stream == "prep":
            # from the confirmation when it came first (as the engine sees it), else creation
            confirmed_first = pl.col("confirmed") <= pl.col("ready")
            start = pl.when(confirmed_first).then(pl.col("confirmed")).otherwise(pl.col("created"))
            value = (pl.col("ready") - start).dt.total_microseconds() / 1e6
            return life.select(key, time=pl.col("ready"), value=value)
        created = life.select(key, time=pl.col("created"), value=pl.lit(1.0))
        if stream == "created":
            return created
        ended = life.select(key, time=pl.col("terminal"), value=pl.lit(-1.0))
        return pl.concat([created, ended])

    def queries(self, key: str) -> pl.DataFrame:
        """``_row``, ``key`` and ``t`` (the as-of time) per spine row; ``key`` as in
        :meth:`observations`."""
        return self.memo(("queries", key), lambda: self._queries(key))

    def _queries(self, key: str) -> pl.DataFrame:
        t = pl.col("created_at")
        keys = self._day_keys(t)
        return self.orders.select("_row", keys.get(key, pl.col(key)).alias(key), t=t)

    def _day_keys(self, time: pl.Expr) -> dict[str, pl.Expr]:
        return {
            "day": local_day_key(time, self.local_timezone),
            "market_day": local_day_key(time, self.local_timezone, pl.col("market_id")),
        }

    def latest_before(
        self,
        event_type: str,
        key: str,
        columns: tuple[str, ...],
        ttl: timedelta,
        *,
        inclusive: bool = False,
    ) -> pl.DataFrame:
        """For each spine row, ``columns`` of the last ``event_type`` event with the same
        ``key`` strictly before the order's creation (or at it, ``inclusive``) and at most
        ``ttl`` old (else null). Observations of one key at the same instant merge as the
        online store merges them (:func:`arrive.store.base.supersedes`): each column's
        largest value, null the smallest, so the answer never depends on their order."""
        observations = (
            self.events.filter((pl.col("type") == event_type) & pl.col(key).is_not_null())
            .group_by(key, "event_time")
            .agg(pl.col(column).max() for column in columns)
            .sort("event_time")
            .collect()
        )
        joined = (
            self.orders.select("_row", key, "created_at")
            .sort("created_at")
            .join_asof(
                observations,
                left_on="created_at",
                right_on="event_time",
                by=key,
                strategy="backward",
                allow_exact_matches=inclusive,
                tolerance=ttl,
                check_sortedness=False,
            )
        )
        return joined.sort("_row").select("_row", *columns)


def local_day_key(time: pl.Expr, timezone: str, prefix: pl.Expr | None = None) -> pl.Expr:
    """The local calendar day of ``time`` (optionally prefixed by an entity id) as a key."""
    day = time.dt.convert_time_zone(timezone).dt.date().cast(pl.String)
    return day if prefix is None else prefix + pl.lit("|") + day


def _seconds(start: str, end: str) -> pl.Expr:
    return (pl.col(end) - pl.col(start)).dt.total_microseconds() / 1e6


def _first_time(event_type: str, alias: str) -> pl.Expr:
    return pl.col("event_time").filter(pl.col("type") == event_type).min().alias(alias)


class FeatureGroup(Protocol):
    """A family of features computed together.

    To implement, provide at least ``name``, ``specs(ctx)`` (the features this
    data supports), ``missing(ctx)`` (why the group cannot be built here, or
    None) and ``offline(ctx)`` (one row per spine row, in spine order, one
    column per spec).
    """

    name: str

    def missing(self, ctx: BuildContext) -> str | None: ...

    def specs(self, ctx: BuildContext) -> tuple[FeatureSpec, ...]: ...

    def offline(self, ctx: BuildContext) -> pl.DataFrame: ...
