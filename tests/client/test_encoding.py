"""Bulk bodies built from columns (a Polars frame) or from mappings carry what
``to_request`` makes of each row: the service decodes the same request from both."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import msgspec
import polars as pl
import pytest

from arrive.client.calls import to_request
from arrive.client.encoding import (
    FrameOrders,
    MappingOrders,
    Orders,
    order_ids_in,
    orders_in,
    problem,
)
from arrive.client.sources import read_orders
from arrive.errors import InputFileError
from arrive.schema.api import BatchRequest
from arrive.schema.eta import EtaRequest

AT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
ROWS: list[dict[str, Any]] = [
    {
        "order_id": "o-0",
        "created_at": AT,
        "store_id": "s-1",
        "pickup_lat": 12.5,
        "items": 3,
        "weather": "rain",
        "festival": True,
        "courier_age": 31.0,
        "status": "delivered",  # an outcome: never sent
        "duration_s": 1500.0,
    },
    {
        "order_id": "o-1",
        "created_at": None,
        "store_id": None,
        "pickup_lat": 13.0,
        "items": None,
        "weather": None,  # a null attribute is left out
        "festival": False,
        "courier_age": math.nan,  # so is NaN
        "status": None,
        "duration_s": None,
    },
    {
        "order_id": 'o-"2"',
        "created_at": AT,
        "store_id": "s,\\2",
        "pickup_lat": None,
        "items": 1,
        "weather": None,
        "festival": None,
        "courier_age": None,
        "status": "cancelled",
        "duration_s": None,
    },
]


def _requests(orders: Orders, rows: list[int], size: int) -> list[tuple[int, EtaRequest]]:
    batches, refused = orders.batches(rows, size)
    assert refused == []
    assert all(len(b.rows) <= size for b in batches)
    decoded = [msgspec.json.decode(b.body, type=BatchRequest).orders for b in batches]
    return [
        (row, request)
        for batch, requests in zip(batches, decoded, strict=True)
        for row, request in zip(batch.rows, requests, strict=True)
    ]


def _expected(rows: list[dict[str, Any]]) -> list[EtaRequest]:
    def clean(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}

    return [to_request(clean(row)) for row in rows]


@pytest.mark.parametrize("size", [1, 2, 256])
def test_a_frame_and_mappings_encode_as_to_request_does(size: int) -> None:
    frame = pl.DataFrame(ROWS, schema_overrides={"created_at": pl.Datetime("us", "UTC")})
    expected = _expected(ROWS)
    for orders in (FrameOrders(frame), MappingOrders(ROWS)):
        got = _requests(orders, [0, 1, 2], size)
        assert [row for row, _ in got] == [0, 1, 2]
        assert [request for _, request in got] == expected


def test_rows_are_encoded_in_the_order_asked() -> None:
    frame = pl.DataFrame(ROWS, schema_overrides={"created_at": pl.Datetime("us", "UTC")})
    expected = _expected(ROWS)
    got = _requests(FrameOrders(frame), [2, 0], 2)
    assert got == [(2, expected[2]), (0, expected[0])]


def test_a_nested_attributes_struct_is_merged_and_a_column_wins() -> None:
    rows = [
        {"order_id": "a", "attributes": {"weather": "sun", "traffic": "low"}, "traffic": "jam"},
        {"order_id": "b", "attributes": {"weather": None, "traffic": "high"}, "traffic": None},
    ]
    got = _requests(read_orders(pl.DataFrame(rows)), [0, 1], 10)
    assert [r.attributes for _, r in got] == [
        {"weather": "sun", "traffic": "jam"},
        {"traffic": "high"},
    ]
    mapped = _requests(read_orders(rows), [0, 1], 10)
    assert [r.attributes for _, r in mapped] == [
        {"weather": "sun", "traffic": "jam"},
        {"traffic": "high"},
    ]


def test_request_shaped_mappings_are_sent_as_they_are() -> None:
    rows = [{"order_id": "a", "items": 2, "attributes": {"x": 1.0}}, {"order_id": "b"}]
    got = _requests(MappingOrders(rows), [0, 1], 2)
    assert [r for _, r in got] == [to_request(row) for row in rows]


def test_a_mapping_that_cannot_be_encoded_is_refused_alone() -> None:
    rows = [{"order_id": "a", "items": 2}, {"order_id": "b", "items": object()}]
    batches, refused = MappingOrders(rows).batches([0, 1], 10)
    assert [b.rows for b in batches] == [[0]]
    assert [(r.row, r.order_id) for r in refused] == [(1, "b")]
    assert refused[0].error.startswith("items")


def test_a_frame_that_cannot_be_encoded_names_the_reason() -> None:
    frame = pl.DataFrame(
        {"order_id": ["a"], "blob": [object()]}, schema_overrides={"blob": pl.Object}
    )
    with pytest.raises(InputFileError, match="cannot be encoded"):
        FrameOrders(frame).batches([0], 10)


def test_a_body_splits_back_into_its_orders_each_checked_on_its_own() -> None:
    rows = [{"order_id": "a", "pickup_lat": 91.0}, {"order_id": "b"}, {"items": 1}]
    (batch,), _ = MappingOrders(rows).batches([0, 1, 2], 3)
    sent = orders_in(batch.body)
    assert [msgspec.json.decode(o) for o in sent] == rows
    assert order_ids_in(batch.body) == ["a", "b", None]
    found = [problem(order) for order in sent]
    assert found[1] is None
    assert found[0] is not None
    assert found[0].field == "pickup_lat"
    assert found[2] is not None
    assert (found[2].field, found[2].reason) == (
        "order_id",
        "required field is missing",
    )
