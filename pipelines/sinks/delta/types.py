"""Spark types for Debezium columns, and decoded values as Spark takes them (pure: no JVM needed).

The mapping mirrors the Iceberg sink's (:func:`pipelines.sinks.iceberg.writer.iceberg_type`), so a
source column has the same logical type in both lakes: Connect integers, floats, booleans, text and
bytes as themselves; fixed-scale decimals with their precision and scale; dates; timestamps without
zone (Debezium's `Timestamp`, `MicroTimestamp`, `NanoTimestamp`, Connect's `Timestamp`) as
`TIMESTAMP_NTZ` and `ZonedTimestamp` as `TIMESTAMP` (an instant, UTC); JSON, UUIDs and
`VariableScaleDecimal` (no fixed scale to type it with) as text; arrays as arrays of their element.

Times of day are the one difference: Spark has no TIME type, so they are text, `HH:MM:SS[.ffffff]`
(`datetime.time.isoformat()`, with the offset for `ZonedTime`), which sorts like the time it holds.

Only the source primary key's columns are NOT NULL: Delta enforces NOT NULL on every write, so a
source that relaxes a constraint later would otherwise have its rows refused.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from pipelines.debezium import ChangeEvent
from pipelines.sinks.columns import decimal_precision_and_scale
from pipelines.sinks.errors import TerminalSinkError

INTEGER_RANGES: dict[type[DataType], tuple[int, int]] = {
    IntegerType: (-(2**31), 2**31 - 1),
    LongType: (-(2**63), 2**63 - 1),
}


def _decimal_type(schema: Mapping[str, Any]) -> DataType:
    return DecimalType(*decimal_precision_and_scale(schema, "Spark"))


_LOGICAL_TYPES: dict[str, Callable[[Mapping[str, Any]], DataType]] = {
    "org.apache.kafka.connect.data.Decimal": _decimal_type,
    "io.debezium.time.Date": lambda _: DateType(),
    "org.apache.kafka.connect.data.Date": lambda _: DateType(),
    "io.debezium.time.Timestamp": lambda _: TimestampNTZType(),
    "io.debezium.time.MicroTimestamp": lambda _: TimestampNTZType(),
    "io.debezium.time.NanoTimestamp": lambda _: TimestampNTZType(),
    "org.apache.kafka.connect.data.Timestamp": lambda _: TimestampNTZType(),
    "io.debezium.time.ZonedTimestamp": lambda _: TimestampType(),
    "io.debezium.time.Time": lambda _: StringType(),
    "io.debezium.time.MicroTime": lambda _: StringType(),
    "io.debezium.time.NanoTime": lambda _: StringType(),
    "org.apache.kafka.connect.data.Time": lambda _: StringType(),
    "io.debezium.time.ZonedTime": lambda _: StringType(),
    "io.debezium.data.Uuid": lambda _: StringType(),
    "io.debezium.data.Json": lambda _: StringType(),
    "io.debezium.data.VariableScaleDecimal": lambda _: StringType(),
}
_PRIMITIVE_TYPES: dict[str, Callable[[], DataType]] = {
    "int8": IntegerType,
    "int16": IntegerType,
    "int32": IntegerType,
    "int64": LongType,
    # The JSON converter writes FLOAT32/FLOAT64 as "float"/"double"; Connect's own names are kept too.
    "float": FloatType,
    "double": DoubleType,
    "float32": FloatType,
    "float64": DoubleType,
    "boolean": BooleanType,
    "string": StringType,
    "bytes": BinaryType,
}


def spark_type(column_schema: Mapping[str, Any]) -> DataType:
    """The Spark type of a Debezium column (its Connect schema, logical name first)."""
    name = column_schema.get("name")
    if name in _LOGICAL_TYPES:
        return _LOGICAL_TYPES[name](column_schema)
    kind = column_schema.get("type", "")
    if kind == "array":
        items = column_schema.get("items") or {}
        element = spark_type({**items, "field": f"{column_schema.get('field')}.element"})
        return ArrayType(element, containsNull=bool(items.get("optional", True)))
    if kind not in _PRIMITIVE_TYPES:
        raise TerminalSinkError(f"column {column_schema.get('field')!r}: no Spark type for Connect type {kind!r} ({name})")
    return _PRIMITIVE_TYPES[kind]()


def struct_type_from_event(event: ChangeEvent) -> StructType:
    """The table's columns from an event's row schema, in source order; the key columns NOT NULL."""
    columns = event.row_schema.get("fields", [])
    names = [column["field"] for column in columns]
    if not event.key_columns:
        raise TerminalSinkError(
            f"{event.topic}@{event.partition}:{event.offset}: the source table has no primary key, which the Delta MERGE is keyed by"
        )
    absent = [column for column in event.key_columns if column not in names]
    if absent:
        raise TerminalSinkError(f"{event.topic}@{event.partition}:{event.offset}: key columns {absent} are not in the row schema {names}")
    return StructType(
        [StructField(column["field"], spark_type(column), nullable=column["field"] not in event.key_columns) for column in columns]
    )


def _fitted_decimal(value: decimal.Decimal | int, kind: DecimalType) -> decimal.Decimal:
    # Spark would store a decimal that does not fit as NULL (ANSI mode off) or round it: refuse it here.
    exact = decimal.Context(prec=kind.precision, traps=[decimal.Inexact, decimal.InvalidOperation])
    problem = f"{value} does not fit decimal({kind.precision},{kind.scale})"
    if not decimal.Decimal(value).is_finite():
        raise ValueError(problem)
    try:
        return decimal.Decimal(value).quantize(decimal.Decimal(1).scaleb(-kind.scale), context=exact)
    except decimal.DecimalException as unfit:
        raise ValueError(problem) from unfit


def _text(value: Any) -> Any:
    if isinstance(value, (dict, list, bool, int, float)):
        # A JSON document (or a JSON scalar) as its canonical text.
        return json.dumps(value, sort_keys=True)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        # "f": positional notation, so 0 at scale 10 reads 0.0000000000, not 0E-10.
        return format(value, "f")
    if isinstance(value, dt.time):
        return value.isoformat()
    return value


def spark_value(value: Any, data_type: DataType) -> Any:
    """A decoded column value as Spark takes it for a column of `data_type`.

    Raises ValueError or OverflowError for a value the column cannot hold exactly (the writer
    refuses the change: terminal); anything else of the wrong type is left for Spark's own check.
    """
    if value is None:
        return None
    if isinstance(data_type, ArrayType):
        return [spark_value(item, data_type.elementType) for item in value]
    if isinstance(data_type, StringType):
        return _text(value)
    if isinstance(data_type, DecimalType) and isinstance(value, (decimal.Decimal, int)) and not isinstance(value, bool):
        return _fitted_decimal(value, data_type)
    if type(data_type) in INTEGER_RANGES and isinstance(value, int) and not isinstance(value, bool):
        low, high = INTEGER_RANGES[type(data_type)]
        if not low <= value <= high:
            raise OverflowError(f"{value} is out of range for {data_type.simpleString()}")
        return value
    if isinstance(data_type, TimestampType) and isinstance(value, dt.datetime) and value.tzinfo is None:
        # Spark reads a naive datetime as the Python process's local time; Debezium's are UTC.
        return value.replace(tzinfo=dt.timezone.utc)
    if isinstance(data_type, TimestampNTZType) and isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(data_type, BinaryType) and isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value
