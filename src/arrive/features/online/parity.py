"""Parity: the online path computes the same features as the offline builder.

A data directory's event log is replayed in event time through the
:class:`~arrive.features.online.engine.OnlineEngine` into a store; at the creation
time of each sampled order the :class:`~arrive.features.online.reader.OnlineFeatures`
reads its features, and each is compared with the offline builder's value for the
same order within the feature's declared tolerance.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from arrive import datadir
from arrive.datadir import local_timezone, spine_of
from arrive.errors import DataError
from arrive.features.offline import FeatureSet, build_features
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.reader import OnlineFeatures
from arrive.features.online.replay import created_events, replay_order, replay_until
from arrive.features.spec import BuildContext, FeatureScalar, FeatureSpec
from arrive.schema.events import OrderCreated
from arrive.store.base import OnlineStore
from arrive.store.memory import InMemoryStore

Progress = Callable[[int, int], None]


@dataclass
class FeatureParity:
    """How one feature compared.

    Attributes:
        name: the feature.
        tolerance: the absolute difference its spec allows.
        compared: orders compared.
        mismatches: orders whose online value differs beyond the tolerance.
        examples: a few mismatches, as ``order: online != offline``.
    """

    name: str
    tolerance: float
    compared: int = 0
    mismatches: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ParityReport:
    """The outcome of a parity run."""

    orders: int
    events: int
    features: list[FeatureParity]
    left_out: dict[str, str]

    @property
    def mismatches(self) -> int:
        return sum(f.mismatches for f in self.features)


def run_parity(
    directory: Path,
    *,
    sample: int = 1000,
    seed: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
    store: OnlineStore | None = None,
    on_progress: Progress | None = None,
) -> ParityReport:
    """Replay ``directory``'s event log up to ``end`` and compare ``sample`` orders
    created in ``[start, end)`` online against offline.

    Raises:
        InputFileError: the directory has no orders table or event log.
        DataError: no order was created in the range.
    """
    directory = Path(directory)
    events = datadir.scan_events(directory)
    if end is not None:
        events = events.filter(pl.col("event_time") < end)
    spine = _sample(spine_of(datadir.read_orders(directory), events), sample, seed, start)
    return compare_online_offline(
        events, spine, local_timezone(directory), store=store, on_progress=on_progress
    )


def compare_online_offline(
    events: pl.LazyFrame,
    spine: pl.DataFrame,
    timezone: str,
    *,
    store: OnlineStore | None = None,
    on_progress: Progress | None = None,
) -> ParityReport:
    """Every order of ``spine`` (``order_id``, ``created_at``, order fields, attributes)
    featurised offline from ``events`` and online by replaying them into ``store``."""
    attributes = tuple(c for c in spine.columns if c not in datadir.ORDER_COLUMNS)
    offline = build_features(BuildContext(spine, events, timezone, attributes))
    log = replay_order(events).collect()
    created = created_events(log, spine.get_column("order_id"))
    reader = OnlineFeatures(offline.names, {s.name: s.ttl_s for s in offline.specs}, timezone)
    engine = OnlineEngine(store or InMemoryStore(), local_timezone=timezone)
    online = _replay(log, created, engine, reader, on_progress)
    return ParityReport(len(spine), len(log), compare(offline, online), offline.left_out)


def _sample(spine: pl.DataFrame, n: int, seed: int, start: datetime | None) -> pl.DataFrame:
    if start is not None:
        spine = spine.filter(pl.col("created_at") >= start)
    if spine.is_empty():
        raise DataError("parity: no delivered order was created in the range")
    rows = sorted(random.Random(seed).sample(range(len(spine)), min(n, len(spine))))
    return spine[rows]


def _replay(
    log: pl.DataFrame,
    created: dict[str, OrderCreated],
    engine: OnlineEngine,
    reader: OnlineFeatures,
    on_progress: Progress | None,
) -> dict[str, dict[str, FeatureScalar]]:
    """Online features of each sampled order, read at its creation time."""
    out: dict[str, dict[str, FeatureScalar]] = {}
    for done, query in enumerate(replay_until(log, created.values(), engine), 1):
        out[query.order_id] = reader.read(engine.store, [query], query.event_time)[0].values
        if on_progress:
            on_progress(done, len(created))
    return out


def compare(
    offline: FeatureSet, online: Mapping[str, Mapping[str, FeatureScalar]]
) -> list[FeatureParity]:
    """Each feature of ``offline`` against ``online`` (order id → the values served
    for it; every order of ``offline`` must be there), within the feature's tolerance."""
    results = {s.name: FeatureParity(s.name, s.tolerance) for s in offline.specs}
    specs = {s.name: s for s in offline.specs}
    for row in offline.frame.iter_rows(named=True):
        got = online[row["order_id"]]
        for name, result in results.items():
            result.compared += 1
            if not _agree(specs[name], got.get(name), row[name]):
                result.mismatches += 1
                if len(result.examples) < 3:
                    result.examples.append(f"{row['order_id']}: {got.get(name)!r} != {row[name]!r}")
    return list(results.values())


def _agree(spec: FeatureSpec, online: FeatureScalar, offline: object) -> bool:
    if offline is None or (isinstance(offline, float) and math.isnan(offline)):
        return online is None
    if online is None:
        return False
    if isinstance(offline, int | float) and not isinstance(offline, bool):
        return isinstance(online, float) and abs(online - float(offline)) <= spec.tolerance
    return str(online) == str(offline)
