"""A batch read column by column gives the same features as the rows of ``get_many``,
and the model's matrix holds the stored numbers the encoder would give."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import msgspec
import numpy as np
import pytest

from arrive.datadir import ORDER_COLUMNS
from arrive.features.offline import build_features
from arrive.features.online.engine import OnlineEngine
from arrive.features.online.reader import OnlineFeatures
from arrive.features.online.replay import LogReplay, replay_order
from arrive.features.spec import BuildContext
from arrive.schema.events import OrderCreated
from arrive.schema.frame import frame_to_events
from arrive.serving.compiled import RowEncoder
from arrive.store.base import OnlineStore
from arrive.store.memory import InMemoryStore
from arrive.testing.factories import order_spine, random_marketplace
from arrive.testing.store_contract import redis_test_config

ZONE = "Europe/Berlin"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[OnlineStore]:
    if request.param == "memory":
        made: OnlineStore = InMemoryStore()
    else:
        from arrive.store.redis import RedisStore

        made = RedisStore(redis_test_config(request.getfixturevalue("redis_url")))
    yield made
    made.close()


def _market(seed: int, store: OnlineStore) -> tuple[OnlineFeatures, list[OrderCreated]]:
    """A random marketplace replayed into ``store``; its reader and its orders."""
    market = random_marketplace(seed, n_orders=60, provider=True)
    spine = order_spine(market.events)
    attributes = tuple(c for c in spine.columns if c not in ORDER_COLUMNS)
    offline = build_features(BuildContext(spine, market.events.lazy(), ZONE, attributes))
    reader = OnlineFeatures(offline.names, {s.name: s.ttl_s for s in offline.specs}, ZONE)
    log = replay_order(market.events.lazy()).collect()
    LogReplay(log, OnlineEngine(store, local_timezone=ZONE)).apply_next(len(log))
    created = log.filter(log.get_column("type") == "order_created")
    orders = [e for e in frame_to_events(created) if isinstance(e, OrderCreated)]
    return reader, orders


def _varied(orders: list[OrderCreated], stored: list[str]) -> list[OrderCreated]:
    """``orders`` with some lacking ids, some naming a store with nothing stored, and some
    giving a stored feature themselves."""
    out = []
    for i, order in enumerate(orders):
        changed = order
        if i % 5 == 1:
            changed = msgspec.structs.replace(changed, store_id=None, courier_id=None)
        if i % 5 == 3:
            changed = msgspec.structs.replace(changed, store_id="never-seen")
        if i % 7 == 2:
            changed = msgspec.structs.replace(changed, attributes={stored[i % len(stored)]: 4.5})
        out.append(changed)
    return out


@pytest.mark.parametrize("seed", [3, 13])
def test_columns_give_the_features_of_rows(store: OnlineStore, seed: int) -> None:
    reader, orders = _market(seed, store)
    assert "idle_couriers_near" in reader.names
    kinds = [kind for kind in reader.fields if kind not in ("pipeline", "cell")]
    stored = [name for kind in kinds for name in reader.fields[kind]]
    assert len(stored) > 15
    batch = _varied(orders[-40:], stored)
    last = max(order.event_time for order in batch)
    encoder = RowEncoder(reader.names, {})
    # now, then with the aggregates lagging and latest observations too old
    for at in (last, last + timedelta(minutes=10), last + timedelta(days=3)):
        plan = reader.plan(batch, at)
        want = reader.features(batch, plan, store.get_many(plan.keys))
        got = reader.from_columns(batch, plan, store.get_columns(plan.keys, reader.fields))
        assert got.features == want
        assert len(got.filled) > (10 if at == last else 0)
        assert at != last or any(found.values["idle_couriers_near"] for found in want)
        full = encoder.encode([found.values for found in want])
        np.testing.assert_array_equal(got.matrix[:, got.filled], full[:, got.filled])
    assert any(found.stale for found in got.features)
    assert any(found.missing for found in got.features)
