"""CDC → Iceberg: Debezium change events applied to an Iceberg table keyed by the source primary key.

One Iceberg commit per batch: the batch is reduced to the last state of each key, the keys it
touched are deleted and the surviving rows appended in one transaction, and the Kafka offsets the
batch ends at are written into that commit's snapshot summary. On start the sink resumes from the
offsets in the table's latest snapshot, so a crash between the Iceberg commit and the Kafka offset
commit duplicates nothing. The table is created from the first event's schema, and columns the
source adds later are added to it.

Errors come in two kinds: transient ones (catalog or store unreachable, commit conflicts) are
retried with a bounded backoff; terminal ones (a record that is not a change event) are counted
and dead-lettered, and the batch goes on without them.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import requests
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In, Or
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

from pipelines.debezium import ChangeEvent, DecodeError, Tombstone, decode_message

OFFSETS_PROPERTY = "cdcstack.kafka-offsets"
"""Snapshot summary key holding {"topic:partition": next offset} of the batch a commit applied."""


class SinkError(Exception):
    """Base of the sink's errors."""


class TransientSinkError(SinkError):
    """Retrying may succeed (catalog or store unreachable, a concurrent commit won)."""


class TerminalSinkError(SinkError):
    """Retrying will not help (a schema change the table cannot take)."""


_LOGICAL_TYPES: dict[str, Callable[[Mapping[str, Any]], IcebergType]] = {
    "org.apache.kafka.connect.data.Decimal": lambda schema: DecimalType(
        int((schema.get("parameters") or {}).get("connect.decimal.precision", 38)), int((schema.get("parameters") or {}).get("scale", 0))
    ),
    "io.debezium.time.Date": lambda _: DateType(),
    "org.apache.kafka.connect.data.Date": lambda _: DateType(),
    "io.debezium.time.Timestamp": lambda _: TimestampType(),
    "io.debezium.time.MicroTimestamp": lambda _: TimestampType(),
    "io.debezium.time.NanoTimestamp": lambda _: TimestampType(),
    "org.apache.kafka.connect.data.Timestamp": lambda _: TimestampType(),
    "io.debezium.time.ZonedTimestamp": lambda _: TimestamptzType(),
    "io.debezium.time.Time": lambda _: TimeType(),
    "io.debezium.time.MicroTime": lambda _: TimeType(),
    "io.debezium.data.Uuid": lambda _: StringType(),
    "io.debezium.data.Json": lambda _: StringType(),
    "io.debezium.data.VariableScaleDecimal": lambda _: DoubleType(),
}
_PRIMITIVE_TYPES: dict[str, Callable[[], IcebergType]] = {
    "int8": IntegerType,
    "int16": IntegerType,
    "int32": IntegerType,
    "int64": LongType,
    "float32": FloatType,
    "float64": DoubleType,
    "boolean": BooleanType,
    "string": StringType,
    "bytes": BinaryType,
}


def iceberg_type(column_schema: Mapping[str, Any]) -> IcebergType:
    """The Iceberg type of a Debezium column (its Connect schema, logical name first)."""
    name = column_schema.get("name")
    if name in _LOGICAL_TYPES:
        return _LOGICAL_TYPES[name](column_schema)
    kind = column_schema.get("type", "")
    if kind not in _PRIMITIVE_TYPES:
        raise TerminalSinkError(f"column {column_schema.get('field')!r}: no Iceberg type for Connect type {kind!r} ({name})")
    return _PRIMITIVE_TYPES[kind]()


def schema_from_event(event: ChangeEvent) -> Schema:
    """An Iceberg schema from an event's row schema; the source key columns become identifier fields."""
    fields, identifiers = [], []
    for field_id, column in enumerate(event.row_schema.get("fields", []), start=1):
        is_key = column["field"] in event.key_columns
        fields.append(NestedField(field_id, column["field"], iceberg_type(column), required=is_key or not column.get("optional", True)))
        if is_key:
            identifiers.append(field_id)
    return Schema(*fields, identifier_field_ids=identifiers)


def _cell(value: Any) -> Any:
    """Values pyarrow cannot take as they are: parsed JSON back to text, UUIDs to text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if type(value).__name__ == "UUID":
        return str(value)
    return value


@dataclass
class BatchPlan:
    """A batch reduced to what one Iceberg commit must do."""

    truncate: bool = False
    upserts: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    deletes: set[tuple[Any, ...]] = field(default_factory=set)

    @property
    def touched(self) -> set[tuple[Any, ...]]:
        return set(self.upserts) | self.deletes


def plan_batch(events: Iterable[ChangeEvent], key_columns: Sequence[str]) -> BatchPlan:
    """The last state of every key the batch touched; a truncate forgets everything before it."""
    plan = BatchPlan()
    for event in events:
        if event.op == "t":
            plan = BatchPlan(truncate=True)
            continue
        if event.op == "d":
            key = tuple(event.before[column] for column in key_columns)
            plan.upserts.pop(key, None)
            plan.deletes.add(key)
            continue
        if event.after is None:
            continue
        if event.op == "u" and event.before is not None:
            old_key = tuple(event.before[column] for column in key_columns)
            new_key = tuple(event.after[column] for column in key_columns)
            if old_key != new_key:
                plan.upserts.pop(old_key, None)
                plan.deletes.add(old_key)
        key = tuple(event.after[column] for column in key_columns)
        plan.deletes.discard(key)
        plan.upserts[key] = event.after
    return plan


def key_filter(keys: Iterable[tuple[Any, ...]], key_columns: Sequence[str]) -> BooleanExpression:
    keys = list(keys)
    if len(key_columns) == 1:
        return In(key_columns[0], [key[0] for key in keys])
    clauses = [And(*[EqualTo(column, value) for column, value in zip(key_columns, key)]) for key in keys]
    return clauses[0] if len(clauses) == 1 else Or(*clauses)


def sink_offsets_of(snapshot: Any) -> str | None:
    """The offsets a sink commit recorded in a snapshot's summary (JSON text), or None."""
    return snapshot.summary.additional_properties.get(OFFSETS_PROPERTY) if snapshot.summary else None


def committed_offsets(table: Table) -> dict[str, int]:
    """{"topic:partition": next offset} recorded by the table's latest sink commit (empty if none)."""
    for snapshot in reversed(table.snapshots()):
        recorded = sink_offsets_of(snapshot)
        if recorded:
            return json.loads(recorded)
    return {}


@dataclass
class IcebergTableWriter:
    """Applies change-event batches to one Iceberg table; the Kafka side is the caller's."""

    catalog: Catalog
    identifier: str
    table: Table | None = None
    dead_letters: list[tuple[str, Exception]] = field(default_factory=list)
    retries: int = 3
    backoff_seconds: float = 0.5

    def load(self) -> Table | None:
        try:
            self.table = self.catalog.load_table(self.identifier)
        except NoSuchTableError:
            self.table = None
        return self.table

    def _ensure_table(self, first: ChangeEvent) -> Table:
        if self.table is None and self.load() is None:
            namespace = self.identifier.rsplit(".", 1)[0]
            self.catalog.create_namespace_if_not_exists(namespace)
            self.table = self.catalog.create_table_if_not_exists(self.identifier, schema_from_event(first))
        return self.table

    def _evolve(self, table: Table, events: Sequence[ChangeEvent]) -> Table:
        known = {column.name for column in table.schema().fields}
        added = {}
        for event in events:
            for column in event.row_schema.get("fields", []):
                if column["field"] not in known and column["field"] not in added:
                    added[column["field"]] = iceberg_type(column)
        if added:
            with table.update_schema() as update:
                for name, kind in added.items():
                    update.add_column(name, kind)
            table = self.catalog.load_table(self.identifier)
            self.table = table
        return table

    def apply(self, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> int:
        """Applies the batch in one commit recording `offsets`; returns the rows appended."""
        if not events:
            return 0
        table = self._evolve(self._ensure_table(events[0]), events)
        key_columns = sorted(table.schema().identifier_field_names(), key=[f.name for f in table.schema().fields].index)
        plan = plan_batch(events, key_columns)
        arrow_schema = table.schema().as_arrow()
        rows = [{column.name: _cell(row.get(column.name)) for column in table.schema().fields} for row in plan.upserts.values()]
        summary = {OFFSETS_PROPERTY: json.dumps(dict(offsets), sort_keys=True)}
        for attempt in range(self.retries + 1):
            try:
                with table.transaction() as transaction, warnings.catch_warnings():
                    # Deleting keys a batch only inserts matches nothing, which pyiceberg warns about.
                    warnings.filterwarnings("ignore", message="Delete operation did not match any records")
                    if plan.truncate:
                        transaction.delete(AlwaysTrue(), snapshot_properties=summary)
                    elif plan.touched:
                        transaction.delete(key_filter(plan.touched, key_columns), snapshot_properties=summary)
                    transaction.append(pa.Table.from_pylist(rows, schema=arrow_schema), snapshot_properties=summary)
                return len(rows)
            except CommitFailedException as conflict:
                if attempt == self.retries:
                    raise TransientSinkError(f"{self.identifier}: commit kept conflicting: {conflict}") from conflict
                time.sleep(self.backoff_seconds * 2**attempt)
                table = self.catalog.load_table(self.identifier)
            except requests.RequestException as unreachable:
                # Before OSError: requests' errors are OSErrors too, but these are the catalog's.
                raise TransientSinkError(f"{self.identifier}: the Iceberg catalog did not answer: {unreachable}") from unreachable
            except OSError as storage:
                # pyarrow's S3 errors: the data files could not be written, so nothing was committed.
                raise TerminalSinkError(
                    f"{self.identifier}: the object store refused the batch's data files, nothing was committed: {storage}"
                ) from storage
        return len(rows)


def split_batch(messages: Iterable[Any]) -> tuple[list[ChangeEvent], list[tuple[Any, DecodeError]], dict[str, int]]:
    """Decoded change events, records to dead-letter, and the next offset per topic:partition."""
    events, rejected, offsets = [], [], {}
    for message in messages:
        offsets[f"{message.topic()}:{message.partition()}"] = message.offset() + 1
        try:
            event = decode_message(message)
        except DecodeError as error:
            rejected.append((message, error))
            continue
        if isinstance(event, ChangeEvent):
            events.append(event)
        elif not isinstance(event, Tombstone):
            rejected.append((message, DecodeError(f"unexpected record {event!r}")))
    return events, rejected, offsets


class IcebergCdcSink:
    """Consumes Debezium topics and applies them to an Iceberg table, one commit per batch.

    The offsets recorded in the table win over the consumer group's: they are what was committed.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        writer: IcebergTableWriter,
        group_id: str,
        batch_max_events: int = 1000,
        batch_max_seconds: float = 0.5,
    ) -> None:
        from confluent_kafka import Consumer

        self.writer = writer
        self.topics = list(topics)
        self.batch_max_events = batch_max_events
        self.batch_max_seconds = batch_max_seconds
        table = writer.load()
        self.offsets: dict[str, int] = committed_offsets(table) if table is not None else {}
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        self.consumer.subscribe(self.topics, on_assign=self._resume)
        self.applied_events = 0

    def _resume(self, consumer: Any, partitions: list[Any]) -> None:
        for partition in partitions:
            recorded = self.offsets.get(f"{partition.topic}:{partition.partition}")
            if recorded is not None:
                partition.offset = recorded
        consumer.assign(partitions)

    def step(self) -> int:
        """Consumes one batch and applies it; returns the change events applied."""
        from confluent_kafka import KafkaException, TopicPartition

        messages = self.consumer.consume(self.batch_max_events, self.batch_max_seconds)
        for message in messages:
            if message.error():
                raise KafkaException(message.error())
        if not messages:
            return 0
        events, rejected, offsets = split_batch(messages)
        self.writer.dead_letters.extend((f"{m.topic()}:{m.partition()}:{m.offset()}", error) for m, error in rejected)
        self.offsets.update(offsets)
        if events:
            self.writer.apply(events, self.offsets)
        positions = []
        for key, offset in offsets.items():
            topic, partition = key.rsplit(":", 1)
            positions.append(TopicPartition(topic, int(partition), offset))
        self.consumer.commit(offsets=positions, asynchronous=False)
        self.applied_events += len(events)
        return len(events)

    def run_until(self, done: Callable[[], bool], timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while not done():
            if time.monotonic() >= deadline:
                raise TransientSinkError(f"{self.writer.identifier}: not caught up within {timeout_seconds:.0f}s")
            self.step()

    def close(self) -> None:
        self.consumer.close()
