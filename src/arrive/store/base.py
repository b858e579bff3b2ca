"""What an online feature store is: its data types, its merge rule and its Protocols.

A store holds, per entity, the latest value of each of its features together with
the event time the value describes. Reads fetch every feature of many entities at
once (one round trip for a remote backend); writes merge into what is stored.

Merge rule (every backend, so at-least-once delivery is harmless): a put merges
its features into the stored vector feature by feature; the value with the later
event time wins, and an older event time never overwrites a newer one. Equal
event times are settled by a fixed order on the value (``None`` < numbers <
strings; numbers by value, strings by code point), so applying the same puts in
any order, any number of times, leaves the same state.

Sync or async: :class:`OnlineStore` is synchronous. The in-memory default costs
about a microsecond per read, so a coroutine around it would only add overhead,
and the ingest loop, replays and parity checks are plain loops. Network backends
also come as an :class:`AsyncOnlineStore` (same data types, ``await`` on each
method) for the asyncio service; the IO-free halves (keys, packing, merge) are
shared, so the two variants stay thin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from numbers import Integral, Real
from typing import Final, NamedTuple, Protocol

EntityKey = tuple[str, str]
"""``(kind, id)``, e.g. ``("store", "1845")``; ``kind`` is a short name without ``:``."""

FeatureScalar = float | str | None
"""A feature value: a number, a category, or ``None`` (known to be unknown)."""

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ABS_EVENT_TIME_US: Final = 2**53
"""Event times must fit a double exactly (Redis scripts compare them as Lua numbers)."""

_ONE_US: Final = timedelta(microseconds=1)


def to_epoch_us(when: datetime) -> int:
    """Microseconds since 1970-01-01 UTC, exactly. Raises ValueError if ``when`` is naive."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"event time {when.isoformat()} must be timezone-aware")
    return (when - EPOCH) // _ONE_US


def from_epoch_us(epoch_us: int) -> datetime:
    """The UTC datetime ``epoch_us`` microseconds after 1970-01-01 UTC, exactly."""
    return EPOCH + timedelta(microseconds=epoch_us)


class FeatureValue(NamedTuple):
    """One stored feature value and the event time it describes.

    Attributes:
        value: a float, a string, or ``None``. Integers are stored as floats;
            NaN is refused (store ``None`` for a missing value).
        event_time_us: event time in microseconds since the Unix epoch (UTC).
    """

    value: FeatureScalar
    event_time_us: int

    @classmethod
    def at(cls, value: FeatureScalar, event_time: datetime) -> FeatureValue:
        """The value ``value`` as of the timezone-aware ``event_time``."""
        return cls(value, to_epoch_us(event_time))

    @property
    def event_time(self) -> datetime:
        """The event time as a UTC datetime (exact to the microsecond)."""
        return from_epoch_us(self.event_time_us)


FeatureRow = Mapping[str, FeatureValue]
"""All stored features of one entity: feature name → :class:`FeatureValue`."""


def supersedes(new: FeatureValue, old: FeatureValue) -> bool:
    """True when ``new`` replaces ``old`` under the merge rule (module docstring)."""
    if new.event_time_us != old.event_time_us:
        return new.event_time_us > old.event_time_us
    return _order(new.value) > _order(old.value)


def _order(value: FeatureScalar) -> tuple[int, float, str]:
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, str):
        return (2, 0.0, value)
    return (1, value, "")


def merge_row(stored: dict[str, FeatureValue], update: FeatureRow) -> bool:
    """Merge ``update`` into ``stored`` in place; True when anything changed."""
    changed = False
    get = stored.get
    for name, new in update.items():
        old = get(name)
        if old is None or new[1] > old[1] or (new[1] == old[1] and _order(new[0]) > _order(old[0])):
            stored[name] = new
            changed = True
    return changed


class ValidRows(list[tuple[EntityKey, FeatureRow]]):
    """Rows for ``put_many`` that their producer built valid and normalised (keys as
    :func:`checked_key` requires, every value a :class:`FeatureValue` as
    :func:`checked_row` returns it): a backend may skip validating them.

    Only for trusted in-process producers (the ingest engine, which writes values it
    computed itself); anything coming from outside is validated as usual.
    """

    __slots__ = ()


def checked_key(entity: EntityKey) -> EntityKey:
    """``entity`` itself, once its kind and id are known to be well formed.

    Raises:
        ValueError: the kind is empty or holds ``:``, or the id is empty.
    """
    kind, entity_id = entity
    if not isinstance(kind, str) or not kind or ":" in kind:
        raise ValueError(f"entity kind {kind!r} must be a non-empty string without ':'")
    if not isinstance(entity_id, str) or not entity_id:
        raise ValueError(f"entity {kind}: id {entity_id!r} must be a non-empty string")
    return entity


def checked_row(entity: EntityKey, row: FeatureRow) -> dict[str, FeatureValue]:
    """A validated, normalised copy of ``row`` (numbers become Python floats).

    Raises:
        ValueError: a name is empty, a value is NaN, a bool or of another type,
            or an event time is not an integer within ±2**53 µs; the message
            names the entity and the feature.
    """
    if _plain_row(row):
        return dict(row)
    return {_checked_name(entity, name): _checked(entity, name, fv) for name, fv in row.items()}


def valid_row(entity: EntityKey, row: FeatureRow) -> FeatureRow:
    """:func:`checked_row` without the copy when nothing needs a change (the common case):
    for a caller that only reads the result before returning.

    Raises:
        ValueError: as :func:`checked_row`.
    """
    return row if _plain_row(row) else checked_row(entity, row)


def _plain_row(row: FeatureRow) -> bool:
    """True when every name and value of ``row`` is already valid and normalised
    (:func:`_is_plain` for each, inline: this runs for every value written)."""
    limit = MAX_ABS_EVENT_TIME_US
    for name, fv in row.items():
        if type(fv) is not FeatureValue or type(name) is not str or not name:
            return False
        value, t_us = fv
        if type(t_us) is not int or not -limit <= t_us <= limit:
            return False
        if (
            value is not None
            and type(value) is not str
            and (type(value) is not float or math.isnan(value))
        ):
            return False
    return True


def _is_plain(fv: FeatureValue) -> bool:
    """True for a FeatureValue that needs no change (the common case, checked cheaply)."""
    if type(fv) is not FeatureValue:
        return False
    value, t_us = fv
    return (
        type(t_us) is int
        and -MAX_ABS_EVENT_TIME_US <= t_us <= MAX_ABS_EVENT_TIME_US
        and (
            value is None or type(value) is str or (type(value) is float and not math.isnan(value))
        )
    )


def _checked_name(entity: EntityKey, name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{_where(entity)}: feature name {name!r} must be a non-empty string")
    return name


def _checked(entity: EntityKey, name: str, fv: FeatureValue) -> FeatureValue:
    if _is_plain(fv):
        return fv
    try:
        value, t_us = fv
    except (TypeError, ValueError):
        raise ValueError(
            f"{_where(entity)} feature {name!r}: {fv!r} is not a (value, event_time_us) pair"
        ) from None
    return FeatureValue(_checked_value(entity, name, value), _checked_time(entity, name, t_us))


def _checked_time(entity: EntityKey, name: str, t_us: object) -> int:
    if type(t_us) is not int and (isinstance(t_us, bool) or not isinstance(t_us, Integral)):
        raise ValueError(
            f"{_where(entity)} feature {name!r}: event_time_us {t_us!r} must be an integer"
        )
    if abs(int(t_us)) > MAX_ABS_EVENT_TIME_US:
        raise ValueError(
            f"{_where(entity)} feature {name!r}: event_time_us {t_us!r} is beyond ±2**53"
        )
    return int(t_us)


def _checked_value(entity: EntityKey, name: str, value: object) -> FeatureScalar:
    if value is None or type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(
            f"{_where(entity)} feature {name!r}: value {value!r} is a {type(value).__name__}; "
            f"expected float, str or None"
        )
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"{_where(entity)} feature {name!r}: NaN is not stored; use None")
    return number


def _where(entity: EntityKey) -> str:
    return f"entity {entity[0]}:{entity[1]}"


class OnlineStore(Protocol):
    """The online feature store, synchronous.

    To implement, provide at least ``get_many``, ``put_many``, ``ping`` and
    ``close``, and pass :mod:`arrive.testing.store_contract` unchanged. Backends
    store what they are given: freshness (TTL) is enforced by
    :class:`~arrive.store.freshness.FreshStore` around any backend.
    """

    def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """Every stored feature of each entity, in the order of ``keys``.

        One round trip for a remote backend. ``None`` marks an entity with no
        stored feature. Each row is a fresh mapping the caller may keep.

        Raises:
            FeatureStoreUnavailable: the backend cannot be reached.
            StoreError: the backend holds a value it cannot decode.
        """
        ...

    def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """Merge each row into its entity's stored features (module docstring).

        An entity may appear several times in one call. Atomic per entity, not
        across entities; retrying a failed call is safe (the merge is idempotent).

        Raises:
            ValueError: a key or value is invalid (nothing of the call is stored).
            FeatureStoreUnavailable: the backend cannot be reached.
        """
        ...

    def ping(self) -> None:
        """Return when the backend can serve; raise FeatureStoreUnavailable if not."""
        ...

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


class AsyncOnlineStore(Protocol):
    """:class:`OnlineStore` for asyncio: the same contract, each method awaited.

    To implement, provide at least ``get_many``, ``put_many``, ``ping`` and
    ``close`` as coroutines; the contract suite runs them through
    :class:`arrive.testing.store_contract.SyncOverAsync`.
    """

    async def get_many(self, keys: Sequence[EntityKey]) -> list[FeatureRow | None]:
        """See :meth:`OnlineStore.get_many`."""
        ...

    async def put_many(self, rows: Sequence[tuple[EntityKey, FeatureRow]]) -> None:
        """See :meth:`OnlineStore.put_many`."""
        ...

    async def ping(self) -> None:
        """See :meth:`OnlineStore.ping`."""
        ...

    async def close(self) -> None:
        """See :meth:`OnlineStore.close`."""
        ...
