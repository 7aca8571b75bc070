"""The Iceberg writer: Debezium change events applied to a table keyed by the source primary key.

One Iceberg transaction per batch: the keys the batch touched are deleted and their last state
appended, and the Kafka offsets the batch ends at go into the snapshot summary of that commit
(:data:`OFFSETS_PROPERTY`), which is where the consumer core resumes from. The table is created from
the first event's schema; columns the source adds later are added to it.

Types: Connect's logical types map to Iceberg's (dates, times, timestamps with and without zone,
fixed-scale decimals with their precision and scale); `VariableScaleDecimal` (Postgres `numeric`
without a scale) has no Iceberg type, so it is kept exactly as its decimal text; JSON and UUIDs are
text; arrays are Iceberg lists of their element type.

A source table without a primary key (Debezium sends its changes with a null key) makes a table
without identifier fields, replicated as a multiset of rows (:func:`pipelines.sinks.batch.plan_keyless_batch`):
an update or delete removes one row equal to its whole old row. The rows that may be affected are
read (a filter on one column of the old rows), the batch's removals taken out of them, and the
commit deletes that filter's rows and appends the survivors with the new rows. A keyless event for
a keyed table is refused, never appended: it would duplicate the row.

Failures are mapped per call: catalog unreachable → :class:`CatalogUnavailableError`, object store
refusing or unreachable → :class:`StorageError`, concurrent commits retried then transient; a value
or column the table cannot take → :class:`TerminalSinkError`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import requests
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    CommitStateUnknownException,
    NoSuchTableError,
    ServerError,
    ServiceUnavailableError,
    ValidationError,
)
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In, IsNull, Or
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
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

from pipelines.debezium import ChangeEvent
from pipelines.sinks.batch import NO_OLD_ROW_HINT, Key, KeylessPlan, plan_batch, plan_keyless_batch, row_identity
from pipelines.sinks.columns import decimal_precision_and_scale
from pipelines.sinks.core import Commit
from pipelines.sinks.errors import CatalogUnavailableError, RejectedEventsError, StorageError, TerminalSinkError, TransientSinkError

OFFSETS_PROPERTY = "cdcstack.kafka-offsets"
"""Snapshot summary key holding {"topic:partition": next offset} of the batch a commit applied."""
CATALOG_STORAGE_ERRORS = ("SdkClientException", "S3Exception", "NoSuchBucket")
"""How the catalog's server errors name a failing object store (the AWS SDK's exception names)."""

FieldIds = Iterator[int]
FILTERABLE_TYPES = (IntegerType, LongType, StringType, DateType, TimestampType, TimestamptzType, TimeType, BooleanType, DecimalType)
"""Column types whose values an Iceberg filter matches exactly (floats and bytes are compared in Python)."""


@dataclass(frozen=True)
class CommitPlan:
    """What one Iceberg transaction does: delete the rows `delete` matches, then append `appended`."""

    delete: BooleanExpression | None
    appended: pa.Table


def _decimal_type(schema: Mapping[str, Any]) -> IcebergType:
    return DecimalType(*decimal_precision_and_scale(schema, "Iceberg"))


_LOGICAL_TYPES: dict[str, Callable[[Mapping[str, Any]], IcebergType]] = {
    "org.apache.kafka.connect.data.Decimal": _decimal_type,
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
    # No Iceberg type has a per-value scale; the exact decimal text loses nothing.
    "io.debezium.data.VariableScaleDecimal": lambda _: StringType(),
}
_PRIMITIVE_TYPES: dict[str, Callable[[], IcebergType]] = {
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


def iceberg_type(column_schema: Mapping[str, Any], field_ids: FieldIds | None = None) -> IcebergType:
    """The Iceberg type of a Debezium column (its Connect schema, logical name first).

    `field_ids` numbers the element of a list; Iceberg renumbers ids when a table is created or
    a column added, so any unique numbers do.
    """
    name = column_schema.get("name")
    if name in _LOGICAL_TYPES:
        return _LOGICAL_TYPES[name](column_schema)
    kind = column_schema.get("type", "")
    if kind == "array":
        ids = field_ids if field_ids is not None else itertools.count(1_000_000)
        items = column_schema.get("items") or {}
        return ListType(next(ids), iceberg_type({**items, "field": f"{column_schema.get('field')}.element"}, ids), not items.get("optional", True))
    if kind not in _PRIMITIVE_TYPES:
        raise TerminalSinkError(f"column {column_schema.get('field')!r}: no Iceberg type for Connect type {kind!r} ({name})")
    return _PRIMITIVE_TYPES[kind]()


def _promotable(current: IcebergType, wanted: IcebergType) -> bool:
    """Whether Iceberg's type promotion rules allow `current` to become `wanted` in place."""
    if isinstance(current, IntegerType) and isinstance(wanted, LongType):
        return True
    if isinstance(current, FloatType) and isinstance(wanted, DoubleType):
        return True
    return (
        isinstance(current, DecimalType)
        and isinstance(wanted, DecimalType)
        and wanted.scale == current.scale
        and wanted.precision > current.precision
    )


def schema_from_event(event: ChangeEvent) -> Schema:
    """An Iceberg schema from an event's row schema; the source key columns become identifier fields."""
    columns = event.row_schema.get("fields", [])
    field_ids = itertools.count(len(columns) + 1)
    fields, identifiers = [], []
    for field_id, column in enumerate(columns, start=1):
        is_key = column["field"] in event.key_columns
        kind = iceberg_type(column, field_ids)
        fields.append(NestedField(field_id, column["field"], kind, required=is_key or not column.get("optional", True)))
        if is_key:
            identifiers.append(field_id)
    return Schema(*fields, identifier_field_ids=identifiers)


def cell(value: Any, kind: IcebergType) -> Any:
    """A decoded column value as Arrow takes it for a column of Iceberg type `kind`."""
    if value is None:
        return None
    if isinstance(kind, ListType):
        return [cell(item, kind.element_type) for item in value]
    if isinstance(kind, StringType):
        if isinstance(value, (dict, list)):
            return json.dumps(value, sort_keys=True)
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, decimal.Decimal):
            # "f": positional notation, so 0 at scale 10 reads 0.0000000000, not 0E-10.
            return format(value, "f")
    if isinstance(kind, TimestamptzType) and isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def key_filter(keys: Iterable[tuple[Any, ...]], key_columns: Sequence[str]) -> BooleanExpression:
    keys = list(keys)
    if not key_columns:
        raise ValueError("a key filter needs key columns (a keyless table is matched by whole rows)")
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


@contextmanager
def _failures_mapped(identifier: str) -> Iterator[None]:
    """Turns what the catalog, the store and Arrow raise into the sink's two kinds of error."""
    try:
        yield
    except (TransientSinkError, TerminalSinkError):
        raise
    except requests.RequestException as unreachable:
        # Before OSError: requests' errors are OSErrors too, but these are the catalog's.
        raise CatalogUnavailableError(f"{identifier}: the Iceberg catalog did not answer: {unreachable}") from unreachable
    except (ServerError, ServiceUnavailableError, CommitStateUnknownException) as catalog_error:
        if any(marker in str(catalog_error) for marker in CATALOG_STORAGE_ERRORS):
            # The catalog writes table metadata to the warehouse itself, so a store that is down
            # reaches us as the catalog's 500 carrying the S3 client's error.
            raise StorageError(
                f"{identifier}: the Iceberg catalog could not write table metadata to the object store, nothing was committed: {catalog_error}"
            ) from catalog_error
        raise CatalogUnavailableError(f"{identifier}: the Iceberg catalog failed the request: {catalog_error}") from catalog_error
    except OSError as storage:
        # pyarrow's S3 errors: the data files could not be written, so nothing was committed.
        raise StorageError(
            f"{identifier}: the object store refused the batch's data files, nothing was committed: {storage}"
        ) from storage
    except ValidationError as invalid:
        raise TerminalSinkError(f"{identifier}: the table cannot take this change: {invalid}") from invalid


@dataclass
class IcebergTableWriter:
    """Applies change-event batches to one Iceberg table (a :class:`pipelines.sinks.core.TableWriter`)."""

    catalog: Catalog
    identifier: str
    table: Table | None = None
    conflict_retries: int = 3
    backoff_seconds: float = 0.5

    def load(self) -> Table | None:
        with _failures_mapped(self.identifier):
            try:
                self.table = self.catalog.load_table(self.identifier)
            except NoSuchTableError:
                self.table = None
        return self.table

    def committed_offsets(self) -> dict[str, int]:
        table = self.load()
        return committed_offsets(table) if table is not None else {}

    def _ensure_table(self, first: ChangeEvent) -> Table:
        if self.table is None and self.load() is None:
            namespace = self.identifier.rsplit(".", 1)[0]
            self.catalog.create_namespace_if_not_exists(namespace)
            self.table = self.catalog.create_table_if_not_exists(self.identifier, schema_from_event(first))
        return self.table

    def _evolve(self, table: Table, events: Sequence[ChangeEvent]) -> Table:
        """Follows the source's schema changes: added columns are added, a column widened at the
        source (int → bigint, real → double, a decimal's precision) is promoted, and a required
        column the source dropped or made nullable becomes optional, so later rows without it fit.
        A type change Iceberg cannot promote is left alone: rows it does not fit are dead-lettered."""
        current = {column.name: column for column in table.schema().fields}
        added: dict[str, IcebergType] = {}
        promoted: dict[str, IcebergType] = {}
        relaxed: set[str] = set()
        for event in events:
            declared = {column["field"]: column for column in event.row_schema.get("fields", [])}
            for name, column in declared.items():
                existing = current.get(name)
                if existing is None:
                    added.setdefault(name, iceberg_type(column))
                    continue
                kind = iceberg_type(column)
                if kind != existing.field_type and _promotable(existing.field_type, kind):
                    promoted[name] = kind
                if existing.required and column.get("optional", True) and name not in event.key_columns:
                    relaxed.add(name)
            relaxed.update(name for name, existing in current.items() if existing.required and name not in declared and declared)
        if added or promoted or relaxed:
            with _failures_mapped(self.identifier), table.update_schema() as update:
                for name, kind in added.items():
                    update.add_column(name, kind)
                for name, kind in promoted.items():
                    update.update_column(name, field_type=kind)
                for name in relaxed:
                    update.make_column_optional(name)
            table = self.catalog.load_table(self.identifier)
            self.table = table
        return table

    def _arrow_rows(self, table: Table, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
        columns = table.schema().fields
        try:
            return pa.Table.from_pylist(
                [{column.name: cell(row.get(column.name), column.field_type) for column in columns} for row in rows],
                schema=table.schema().as_arrow(),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as unfit:
            raise TerminalSinkError(f"{self.identifier}: a value does not fit its column: {unfit}") from unfit

    def _keep_unavailable(
        self,
        table: Table,
        key_columns: Sequence[str],
        upserts: Mapping[Key, dict[str, Any]],
        unresolved: Mapping[Key, tuple[Key, frozenset[str]]],
    ) -> list[dict[str, Any]]:
        """The rows to write, with the columns the source did not send taken from the table."""
        if not unresolved:
            return list(upserts.values())
        lookup = {source for source, _ in unresolved.values()}
        current = {
            tuple(row[column] for column in key_columns): row
            for row in table.scan(row_filter=key_filter(lookup, key_columns)).to_arrow().to_pylist()
        }
        rows = []
        for key, row in upserts.items():
            if key in unresolved:
                source, columns = unresolved[key]
                if source not in current:
                    raise TerminalSinkError(
                        f"{self.identifier}: row {dict(zip(key_columns, key))} arrived without {sorted(columns)} "
                        "(unchanged TOASTed values the source does not send) and the table has no row to keep them from"
                    )
                row = {**row, **{column: current[source].get(column) for column in columns}}
            rows.append(row)
        return rows

    def apply(self, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> Commit:
        """Applies the batch in one commit recording `offsets`; nothing is committed if it fails."""
        if not events:
            return Commit(rows=0, version=None)
        with _failures_mapped(self.identifier):
            try:
                return self._apply(events, offsets)
            except NoSuchTableError as dropped:
                # Dropped behind our back: the next attempt creates it again.
                self.table = None
                raise TransientSinkError(f"{self.identifier}: the table disappeared during the commit: {dropped}") from dropped

    def _apply(self, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> Commit:
        table = self._evolve(self._ensure_table(events[0]), events)
        summary = {OFFSETS_PROPERTY: json.dumps(dict(offsets), sort_keys=True)}
        for attempt in range(self.conflict_retries + 1):
            # Planned against the table as loaded: after a conflict, again against the new snapshot.
            commit_plan = self._commit_plan(table, events)
            try:
                with table.transaction() as transaction, warnings.catch_warnings():
                    # Deleting keys a batch only inserts matches nothing, which pyiceberg warns about.
                    warnings.filterwarnings("ignore", message="Delete operation did not match any records")
                    if commit_plan.delete is not None:
                        transaction.delete(commit_plan.delete, snapshot_properties=summary)
                    transaction.append(commit_plan.appended, snapshot_properties=summary)
                self.table = table
                return Commit(rows=commit_plan.appended.num_rows, version=table.metadata.current_snapshot_id)
            except CommitFailedException as conflict:
                if attempt == self.conflict_retries:
                    raise TransientSinkError(f"{self.identifier}: commit kept conflicting: {conflict}") from conflict
                time.sleep(self.backoff_seconds * 2**attempt)
                table = self.catalog.load_table(self.identifier)
        raise AssertionError("unreachable: the loop returns or raises")

    def _commit_plan(self, table: Table, events: Sequence[ChangeEvent]) -> CommitPlan:
        field_names = [column.name for column in table.schema().fields]
        key_columns = sorted(table.schema().identifier_field_names(), key=field_names.index)
        if not key_columns:
            return self._keyless_commit_plan(table, plan_keyless_batch(events))
        plan = plan_batch(events, key_columns)
        if plan.rejected:
            raise RejectedEventsError(self.identifier, plan.rejected)
        upserts = self._keep_unavailable(table, key_columns, plan.upserts, plan.unresolved)
        appended = self._arrow_rows(table, upserts)
        if plan.truncate:
            return CommitPlan(AlwaysTrue(), appended)
        return CommitPlan(key_filter(plan.touched, key_columns) if plan.touched else None, appended)

    def _keyless_commit_plan(self, table: Table, plan: KeylessPlan) -> CommitPlan:
        """Removes one table row per old row the batch takes out, matched on every column as the
        table holds it (the old rows pass through Arrow like written rows, so a float32 or a decimal's
        scale compares equal); refuses the events whose old row the table does not hold."""
        if plan.rejected:
            raise RejectedEventsError(self.identifier, plan.rejected)
        if not plan.removals:
            return CommitPlan(AlwaysTrue() if plan.truncate else None, self._arrow_rows(table, plan.appends))
        stored = self._arrow_rows(table, [removal.row for removal in plan.removals.values()]).to_pylist()
        removing: dict[str, list[int]] = {}
        for row, removal in zip(stored, plan.removals.values()):
            removing.setdefault(row_identity(row), []).extend(removal.events)
        wanted = {identity: len(events) for identity, events in removing.items()}
        scope = AlwaysTrue() if plan.truncate else _rows_scope(table, stored)
        current = [] if plan.truncate else table.scan(row_filter=scope).to_arrow().to_pylist()
        survivors = []
        for row in current:
            identity = row_identity(row)
            if wanted.get(identity, 0) > 0:
                wanted[identity] -= 1
            else:
                survivors.append(row)
        why = "the table was truncated before it" if plan.truncate else "none, or fewer than the batch removes"
        refused = {
            index: f"{self.identifier}: no row of the table equals the old row of this change ({why}); {NO_OLD_ROW_HINT}"
            for identity, left in wanted.items()
            for index in sorted(removing[identity])[len(removing[identity]) - left :]
            if left
        }
        if refused:
            raise RejectedEventsError(self.identifier, refused)
        return CommitPlan(scope, self._arrow_rows(table, [*survivors, *plan.appends]))


def _rows_scope(table: Table, rows: Sequence[Mapping[str, Any]]) -> BooleanExpression:
    """A filter matching at least every table row equal to one of `rows`: the values of the column
    that tells them apart best, of a type Iceberg filters exactly; every row when there is none."""
    best: BooleanExpression = AlwaysTrue()
    best_distinct = 0
    for column in table.schema().fields:
        if not isinstance(column.field_type, FILTERABLE_TYPES):
            continue
        values = {row.get(column.name) for row in rows}
        present = sorted(value for value in values if value is not None)
        if len(present) <= best_distinct:
            continue
        matching: BooleanExpression = In(column.name, present)
        best = Or(matching, IsNull(column.name)) if None in values else matching
        best_distinct = len(present)
    return best
