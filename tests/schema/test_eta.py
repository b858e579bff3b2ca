"""An order's fields are declared once (OrderCreated); every other list of them agrees."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from arrive.datadir import ORDER_COLUMNS
from arrive.errors import ConfigError
from arrive.schema.eta import P50, P90, EtaRequest, quantile_index, to_order, to_request
from arrive.schema.events import EVENT_TYPES, ORDER_FIELDS, Event, OrderCreated
from arrive.schema.frame import EVENT_COLUMNS


def test_the_order_fields_are_what_order_created_says_besides_its_envelope() -> None:
    fields = OrderCreated.__struct_fields__
    assert tuple(f for f in fields if f not in Event.__struct_fields__)[1:-1] == ORDER_FIELDS
    assert (fields[3], fields[-1]) == ("order_id", "attributes")


def test_the_request_carries_the_order_fields_in_the_same_order() -> None:
    assert EtaRequest.__struct_fields__ == (
        "order_id",
        "request_id",
        "created_at",
        "customer_id",
        *ORDER_FIELDS,
        "attributes",
    )


def test_the_event_log_has_one_column_per_event_field_and_no_other() -> None:
    fields = {f for cls in EVENT_TYPES.values() for f in cls.__struct_fields__}
    assert set(EVENT_COLUMNS) == fields | {"type"}
    assert list(EVENT_COLUMNS)[:4] == ["event_id", "type", "event_time", "schema_version"]
    assert list(EVENT_COLUMNS)[-1] == "attributes"


def test_event_log_columns_take_their_type_from_the_field() -> None:
    assert EVENT_COLUMNS["event_time"] == pl.Datetime("us", "UTC")
    assert EVENT_COLUMNS["schema_version"] == pl.Int16()
    assert EVENT_COLUMNS["items"] == pl.Int32()  # a count
    assert EVENT_COLUMNS["couriers_busy"] == pl.Int32()
    assert EVENT_COLUMNS["pickup_lat"] == pl.Float64()
    assert EVENT_COLUMNS["status"] == pl.String()  # a Literal of names
    assert EVENT_COLUMNS["attributes"] == pl.String()  # JSON text


def test_the_orders_table_holds_the_order_fields_as_the_event_log_does() -> None:
    assert [c for c in ORDER_COLUMNS if c in ORDER_FIELDS] == list(ORDER_FIELDS)
    assert {c: ORDER_COLUMNS[c] for c in ORDER_FIELDS} == {
        c: EVENT_COLUMNS[c] for c in ORDER_FIELDS
    }
    outcome = set(ORDER_COLUMNS) - set(ORDER_FIELDS)
    assert outcome == {
        "order_id",
        "status",
        "created_at",
        "delivered_at",
        "duration_s",
        "source_line",
    }


def _distinct_value(column: str) -> object:
    """A value of ``column``'s type, different for every column."""
    dtype = EVENT_COLUMNS[column]
    seed = list(EVENT_COLUMNS).index(column)
    if dtype == pl.String():
        return f"{column}-value"
    if dtype == pl.Int32():
        return seed
    return seed / 4  # a float within every bound of the request (latitudes included)


def test_every_order_field_survives_the_round_trip_through_a_request() -> None:
    # built from ORDER_FIELDS: a field added to OrderCreated but not to the request
    # or to to_order fails here
    order = OrderCreated(
        event_id="eta:r-1",
        event_time=datetime(2025, 3, 3, 12, 30, tzinfo=UTC),
        order_id="o-1",
        attributes={"weather": "Sunny"},
        **{name: _distinct_value(name) for name in ORDER_FIELDS},  # type: ignore[arg-type]
    )
    back = to_order(to_request(order), "r-1", datetime(2030, 1, 1, tzinfo=UTC))
    assert back == order
    assert [type(getattr(back, f)) for f in ORDER_FIELDS] == [
        type(getattr(order, f)) for f in ORDER_FIELDS
    ]


def test_a_request_counts_become_the_event_integers() -> None:
    request = EtaRequest(order_id="o-1", items=3.0, distinct_items=None, subtotal=12.0)
    order = to_order(request, "r-1", datetime(2030, 1, 1, tzinfo=UTC))
    assert (order.items, order.distinct_items, order.subtotal) == (3, None, 12.0)
    assert type(order.items) is int
    assert type(order.subtotal) is float
    assert order.event_time == datetime(2030, 1, 1, tzinfo=UTC)


def test_quantile_index_finds_the_answer_quantiles_or_names_the_model() -> None:
    assert quantile_index((0.1, 0.5, 0.9), P90, "v1") == 2
    assert quantile_index((0.5000000001, 0.9), P50, "v1") == 0
    with pytest.raises(
        ConfigError, match=r"^v1: predicts quantiles \[0.5\], the service needs 0.9"
    ):
        quantile_index((0.5,), P90, "v1")


def test_a_request_customer_id_rides_in_the_order_attributes_and_back() -> None:
    request = EtaRequest(order_id="o-1", customer_id="c-9", attributes={"weather": "Sunny"})
    order = to_order(request, "r-1", datetime(2030, 1, 1, tzinfo=UTC))
    assert order.attributes == {"weather": "Sunny", "customer_id": "c-9"}
    back = to_request(order)
    assert (back.customer_id, back.attributes) == ("c-9", {"weather": "Sunny"})
    assert to_order(EtaRequest(order_id="o-2"), "r-2", order.event_time).attributes == {}
