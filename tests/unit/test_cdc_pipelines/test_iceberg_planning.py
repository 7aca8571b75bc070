"""How the Iceberg sink reduces a batch of change events and types a table (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest
from pyiceberg.expressions import In, Or
from pyiceberg.types import DateType, DecimalType, IntegerType, LongType, StringType, TimestamptzType

from pipelines.sinks.batch import plan_batch
from pipelines.sinks.errors import TerminalSinkError
from pipelines.sinks.iceberg.writer import iceberg_type, key_filter, schema_from_event
from testkit.iceberg import change

ROW_SCHEMA = {
    "fields": [
        {"field": "id", "type": "int32", "optional": False},
        {"field": "name", "type": "string", "optional": True},
        {"field": "price", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "2", "connect.decimal.precision": "12"}, "optional": True},
        {"field": "born", "type": "int32", "name": "io.debezium.time.Date", "optional": True},
        {"field": "seen", "type": "string", "name": "io.debezium.time.ZonedTimestamp", "optional": True},
        {"field": "big", "type": "int64", "optional": True},
    ]
}


def event(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None):
    return change(op, before, after, row_schema=ROW_SCHEMA)


def test_the_last_change_of_each_key_wins() -> None:
    plan = plan_batch(
        [event("c", None, {"id": 1, "name": "a"}), event("u", {"id": 1, "name": "a"}, {"id": 1, "name": "b"}), event("c", None, {"id": 2, "name": "x"})],
        ["id"],
    )
    assert plan.upserts == {(1,): {"id": 1, "name": "b"}, (2,): {"id": 2, "name": "x"}} and plan.deletes == set()


def test_a_delete_after_a_create_in_the_same_batch_leaves_only_the_delete() -> None:
    plan = plan_batch([event("c", None, {"id": 1}), event("d", {"id": 1}, None)], ["id"])
    assert plan.upserts == {} and plan.deletes == {(1,)}


def test_a_primary_key_change_deletes_the_old_key_and_writes_the_new() -> None:
    plan = plan_batch([event("u", {"id": 1, "name": "a"}, {"id": 9, "name": "a"})], ["id"])
    assert plan.deletes == {(1,)} and plan.upserts == {(9,): {"id": 9, "name": "a"}}


def test_a_truncate_forgets_what_came_before_it_in_the_batch() -> None:
    plan = plan_batch([event("c", None, {"id": 1}), event("t", None, None), event("c", None, {"id": 2})], ["id"])
    assert plan.truncate and plan.upserts == {(2,): {"id": 2}} and plan.deletes == set()


def test_the_table_schema_follows_the_event_with_the_key_as_identifier() -> None:
    schema = schema_from_event(event("c", None, {"id": 1}))
    assert [(f.name, f.field_type, f.required) for f in schema.fields] == [
        ("id", IntegerType(), True),
        ("name", StringType(), False),
        ("price", DecimalType(12, 2), False),
        ("born", DateType(), False),
        ("seen", TimestamptzType(), False),
        ("big", LongType(), False),
    ]
    assert schema.identifier_field_names() == {"id"}


def test_an_unmappable_column_type_is_a_terminal_error() -> None:
    with pytest.raises(TerminalSinkError, match="no Iceberg type for Connect type 'map'"):
        iceberg_type({"field": "tags", "type": "map"})


def test_key_filters_use_in_for_one_column_and_or_for_several() -> None:
    assert key_filter([(1,), (2,)], ["id"]) == In("id", [1, 2])
    assert isinstance(key_filter([(1, "a"), (2, "b")], ["id", "region"]), Or)


def test_binlog_and_postgres_column_types_map_to_iceberg_types() -> None:
    from pyiceberg.types import BinaryType, BooleanType, DoubleType, FloatType, TimestampType, TimeType

    expected = {
        ("int16", None): IntegerType(),
        ("float32", None): FloatType(),
        ("float64", None): DoubleType(),
        ("float", None): FloatType(),
        ("double", None): DoubleType(),
        ("boolean", None): BooleanType(),
        ("bytes", None): BinaryType(),
        ("string", "io.debezium.data.Json"): StringType(),
        ("string", "io.debezium.data.Uuid"): StringType(),
        ("int64", "io.debezium.time.MicroTimestamp"): TimestampType(),
        ("int64", "io.debezium.time.MicroTime"): TimeType(),
    }
    for (kind, name), iceberg in expected.items():
        assert iceberg_type({"field": "c", "type": kind, "name": name}) == iceberg, (kind, name)
