"""The Delta Lake writer: Debezium change events applied to a Delta table by one MERGE per batch.

The table (`<database>.<table>`, Change Data Feed on) is created from the first event's schema at
`<location_root>/<table>`, by default `s3a://<bucket>/delta/<table>`; columns the source adds later
are added with ALTER TABLE first, since a MERGE with explicit assignments does not evolve the schema.
The source primary key (table property :data:`KEY_COLUMNS_PROPERTY`) keys the MERGE: the batch's
last state of each key is updated or inserted, the keys it deleted are deleted, and a truncate
deletes every row the batch does not write, all in the same commit. A column the source did not
send (an unchanged TOASTed value, see :mod:`pipelines.sinks.batch`) keeps the table's value.

A source table without a primary key (Debezium sends its changes with a null key) makes a table
whose property is `[]`, replicated as a multiset of rows (:func:`pipelines.sinks.batch.plan_keyless_batch`):
inserts append; an update or delete removes one row equal to its whole old row, and an update then
appends its new row. That is still one MERGE, on null-safe equality of every column: one `delete`
row per distinct old row (it deletes every table row equal to it) and, as inserts, the table's rows
equal to it beyond those the batch removes (the survivors), with the batch's new rows. Counting and
choosing the survivors happens in Spark, which only hands back small integers. A table is keyed or
not by the first change that created it (a truncate's record has no key, so it creates nothing); a
keyless change for a keyed table is refused, never appended: it would duplicate the row.

Events the writer can tell are at fault before it commits (the plan cannot take them, a value does
not fit its column, no row equals a keyless change's old row, no row holds the values a change did
not send) are refused together with :class:`RejectedEventsError`: the core dead-letters exactly
those and applies the rest.

Each commit records the Kafka offsets the batch ends at as its `userMetadata`, which is where the
consumer core resumes from. The commit is also a Delta idempotent write (`txnAppId` per table,
`txnVersion` the sum of the offsets, which only grows): a batch that is applied again after a
crash, or after a call that failed once Delta had committed, is skipped by Delta itself.

Failures are mapped per call to the sink's two kinds (:mod:`pipelines.sinks.errors`), from the
Java exception and its causes:

- object store unreachable or refusing (Java I/O, the AWS SDK's client errors, S3A's) →
  :class:`StorageError`;
- Hive metastore unreachable (its Derby database, `MetaException`, a metastore client that cannot
  be instantiated) → :class:`CatalogUnavailableError`;
- a concurrent commit (Delta's `Concurrent…Exception`) → retried here, then :class:`CommitConflictError`;
- the table dropped behind the writer's back → transient, the next attempt creates it again;
- a value the table cannot take (out of range, an inexact decimal, a failed cast, NULL in a key)
  → :class:`TerminalSinkError`;
- the Spark driver gone (its JVM exited, the SparkContext stopped) → :class:`SparkDriverLostError`,
  which no retry in this process can cure;
- the cluster failing the job, not the data (executors or tasks lost, RPC disassociated, shuffle
  fetches failed, no executor granted, out of memory, the job cancelled) → transient;
- the network failing on the Python side (an `OSError` such as a reset py4j socket, or a network
  library's exception, anywhere in the chain of causes) → transient;
- anything else (a `TypeError`, `KeyError` or `ValueError` of the writer, a Java exception that is
  not about the environment) is what the events cause, and retrying cannot help →
  :class:`UnexpectedSinkError` (terminal, naming the exception), so one such batch does not hold
  its table's partition for good.
"""

from __future__ import annotations

import enum
import functools
import json
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from delta.tables import DeltaMergeBuilder, DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    _make_type_verifier,  # private: the check createDataFrame runs, run here per event to name the one at fault
)

from pipelines.debezium import UNAVAILABLE, ChangeEvent
from pipelines.sinks.batch import NO_OLD_ROW_HINT, BatchPlan, Key, KeylessPlan, plan_batch, plan_keyless_batch, position
from pipelines.sinks.core import Commit
from pipelines.sinks.delta.types import spark_type, spark_value, struct_type_from_event
from pipelines.sinks.errors import (
    CatalogUnavailableError,
    RejectedEventsError,
    StorageError,
    TerminalSinkError,
    TransientSinkError,
    UnexpectedSinkError,
    network_caused,
)
from pipelines.spark import DELTA_PREFIX, delta_location

KEY_COLUMNS_PROPERTY = "cdcstack.key-columns"
"""Table property holding the source primary key's columns (a JSON list), which the MERGE is keyed
by; `[]` for a source table without one (a multiset of rows)."""
TRANSACTION_APP_ID_CONF = "spark.databricks.delta.write.txnAppId"
TRANSACTION_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
HISTORY_LOOKBACK = 50
"""Commits read back for the latest offsets before reading the whole history (commits without
offsets are only the table's creation, added columns, and maintenance)."""

OP_COLUMN = "__cdcstack_op"
"""What a source row of the MERGE does to its key; the prefix keeps it apart from source columns."""
KEEP_COLUMN = "__cdcstack_keep"
"""The columns a source row takes from the table's current row (values the source did not send)."""
_FROM_KEY_PREFIX = "__cdcstack_from_"
_CURRENT_KEY_PREFIX = "__cdcstack_current_"
_KEPT_PREFIX = "__cdcstack_kept_"
_ROW_COLUMN = "__cdcstack_row"
"""Which upsert of the plan a source row is (to name the event behind a row Spark finds at fault)."""
_OLD_PREFIX = "__cdcstack_old_"
_REMOVAL_COLUMN = "__cdcstack_removal"
_GROUP_COLUMN = "__cdcstack_group"
_MEMBERS_COLUMN = "__cdcstack_members"
_WANTED_COLUMN = "__cdcstack_wanted"
_PRESENT_COLUMN = "__cdcstack_present"
_OCCURRENCE_COLUMN = "__cdcstack_occurrence"
UPSERT, DELETE, INSERT = "upsert", "delete", "insert"


class SparkDriverLostError(TransientSinkError):
    """The Spark driver this process talks to is gone (JVM exited, SparkContext stopped): only a new
    process, with a new driver, can write again."""


class CommitConflictError(TransientSinkError):
    """Delta refused the commit because another one landed first, every time it was tried."""


def transaction_app_id(identifier: str) -> str:
    """Delta's idempotent-write application id of a table's sink: stable across restarts."""
    return f"cdcstack-sink:{identifier}"


def transaction_version(offsets: Mapping[str, int]) -> int:
    """Delta's idempotent-write version for a batch ending at `offsets`.

    Delta skips a write whose version is not above the last one recorded for the application, so
    it must grow with every batch: offsets only move forward, and each batch moves at least one.
    """
    return sum(offsets.values())


def recorded_offsets(history: Iterable[tuple[int, str | None]]) -> dict[str, int] | None:
    """The offsets the newest sink commit recorded, from (version, userMetadata) pairs in any order;
    None when none of them is a sink commit."""
    for _, metadata in sorted(history, key=lambda entry: entry[0], reverse=True):
        if not metadata:
            continue
        try:
            offsets = json.loads(metadata)
        except ValueError:
            continue
        if isinstance(offsets, dict) and all(isinstance(offset, int) for offset in offsets.values()):
            return offsets
    return None


def commit_metadata(table: DeltaTable, limit: int | None = None) -> list[tuple[int, str | None]]:
    """(version, userMetadata) of the table's newest `limit` commits (all of them without one)."""
    history = table.history(limit) if limit is not None else table.history()
    return [(row["version"], row["userMetadata"]) for row in history.select("version", "userMetadata").collect()]


def quoted(name: str) -> str:
    """A column or table name as Spark SQL reads it whatever its characters."""
    return "`" + name.replace("`", "``") + "`"


def table_columns(first: ChangeEvent) -> StructType:
    """The columns of a table created from `first`: its key columns NOT NULL
    (:func:`pipelines.sinks.delta.types.struct_type_from_event`); all nullable when it has no key."""
    if first.key_columns:
        return struct_type_from_event(first)
    return StructType([StructField(column["field"], spark_type(column), nullable=True) for column in first.row_schema.get("fields", [])])


def null_safe_match(left: Sequence[str], right: Sequence[str]) -> Column:
    """Every column of `left` equal to its column of `right`, NULL equal to NULL (`<=>`)."""
    return functools.reduce(operator.and_, [F.col(a).eqNullSafe(F.col(b)) for a, b in zip(left, right)])


class FailureKind(enum.Enum):
    DRIVER_LOST = "driver lost"
    CONFLICT = "commit conflict"
    TABLE_GONE = "table gone"
    CATALOG = "metastore unavailable"
    STORAGE = "object store unavailable"
    UNFIT = "value does not fit"
    SPARK_CLUSTER = "spark cluster failed the job"
    UNKNOWN = "unknown"


_EXCEPTION_CLASS = re.compile(r"(?<![\w.$])((?:[a-z_][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error))(?![\w$])")
_FRAME_LINE = re.compile(r"^\s+(?:at |\.\.\. \d+ more)")
_HEADLINE = re.compile(r"^(?:Caused by: |: )?((?:[a-z_][\w$]*\.)+[A-Z][\w$]*)(?::\s*(.*))?$")

DRIVER_LOST_CLASSES = frozenset({"Py4JNetworkError"})
DRIVER_LOST_MARKERS = (
    "SparkContext was shut down",
    "SparkContext has been shutdown",
    "Cannot call methods on a stopped SparkContext",
    "Answer from Java side is empty",
)
CONFLICT_CLASSES = frozenset(
    {
        "ConcurrentAppendException",
        "ConcurrentDeleteReadException",
        "ConcurrentDeleteDeleteException",
        "ConcurrentWriteException",
        "ConcurrentTransactionException",
        "ConcurrentModificationException",
        "DeltaConcurrentModificationException",
        "MetadataChangedException",
        "ProtocolChangedException",
    }
)
TABLE_GONE_MARKERS = ("[TABLE_OR_VIEW_NOT_FOUND]", "[DELTA_TABLE_NOT_FOUND]", "[DELTA_MISSING_DELTA_TABLE]", "is not a Delta table")
METASTORE_CONNECTION_PACKAGES = ("org.apache.derby.", "javax.jdo.", "org.datanucleus.", "org.apache.thrift.transport.")
METASTORE_CONNECTION_CLASSES = frozenset({"java.sql.SQLNonTransientConnectionException", "java.sql.SQLTransientConnectionException"})
METASTORE_CONNECTION_MARKERS = ("HiveMetaStoreClient", "Error connecting to server")
"""Only a metastore that cannot be reached says these; checked before the store, since the Derby
client's errors carry a `java.net.ConnectException` too."""
METASTORE_CLASSES = frozenset({"org.apache.hadoop.hive.metastore.api.MetaException", "org.apache.hadoop.hive.ql.metadata.HiveException"})
STORAGE_PACKAGES = (
    "java.io.",
    "java.net.",
    "java.nio.file.",
    "java.nio.channels.",
    "com.amazonaws.",
    "software.amazon.awssdk.",
    "org.apache.hadoop.fs.",
    "org.apache.http.",
)
UNFIT_CLASSES = frozenset(
    {
        "ArithmeticException",
        "SparkArithmeticException",
        "NumberFormatException",
        "SparkNumberFormatException",
        "DateTimeException",
        "SparkDateTimeException",
        "DeltaInvariantViolationException",
        "InvariantViolationException",
    }
)
UNFIT_MARKERS = (
    "[CAST_OVERFLOW",
    "[CAST_INVALID_INPUT",
    "[NUMERIC_VALUE_OUT_OF_RANGE",
    "[NUMERIC_OUT_OF_SUPPORTED_RANGE",
    "[ARITHMETIC_OVERFLOW",
    "[DATETIME_OVERFLOW",
    "[DELTA_NOT_NULL_CONSTRAINT_VIOLATED",
    "[DELTA_CAST_OVERFLOW_IN_TABLE_WRITE",
    "NOT NULL constraint violated",
)
SPARK_CLUSTER_CLASSES = frozenset(
    {
        "RpcTimeoutException",
        "ExecutorDeadException",
        "TaskKilledException",
        "FetchFailedException",
        "MetadataFetchFailedException",
        "CancellationException",
        "InterruptedException",
        "TimeoutException",
        "OutOfMemoryError",
    }
)
SPARK_CLUSTER_MARKERS = (
    "ExecutorLostFailure",
    "Lost executor",
    "Remote RPC client disassociated",
    "Executor heartbeat timed out",
    "Could not find CoarseGrainedScheduler",
    "TaskKilled",
    "FetchFailed",
    "Connection reset",
    "Initial job has not accepted any resources",
    "Futures timed out",
    "[SPARK_JOB_CANCELLED]",
    "cancelled job group",
)
"""What Spark says when its executors, tasks or RPC fail the job: the cluster, not the data (a
stage failure that only says `Lost task` is often a value's, and is told apart by its cause)."""
_JOB_CANCELLED = re.compile(r"\b(?:Job|Stage) \d+ (?:was )?cancell?ed\b")
_CANCELLED = re.compile(r"\bcancell?ed\b")
SPARK_EXCEPTION = "org.apache.spark.SparkException"
"""A job Spark aborts says this; one it cancelled (`Job 3 cancelled ...`) is retried like a lost executor."""


def failure_text(error: BaseException) -> str:
    """An error as text, its JVM side included: the Python class and message, then the Java
    exception with its causes (stack frames too; :func:`failure_kind` skips them)."""
    head = f"{type(error).__module__}.{type(error).__qualname__}: "
    java_trace = getattr(error, "stackTrace", None)
    if isinstance(java_trace, str):
        return f"{head}{getattr(error, 'desc', '')}\n{java_trace}"
    try:
        # A Py4JJavaError asks the JVM for its stack trace, which fails when the JVM is gone.
        return head + str(error)
    except Exception:  # noqa: BLE001 - whatever py4j raises, the message it was created with stands
        return head + str(getattr(error, "errmsg", repr(error)))


def _meaningful_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not _FRAME_LINE.match(line)]


def exception_classes(text: str) -> list[str]:
    """Every exception class named in `text` outside stack frames, outermost first."""
    return [match.group(1) for line in _meaningful_lines(text) for match in _EXCEPTION_CLASS.finditer(line)]


def failure_kind(text: str) -> FailureKind:
    """What a failure (as :func:`failure_text` has it) means for the batch; the order settles overlaps."""
    classes = exception_classes(text)
    simple_names = {name.rsplit(".", 1)[-1] for name in classes}
    if simple_names & DRIVER_LOST_CLASSES or any(marker in text for marker in DRIVER_LOST_MARKERS):
        return FailureKind.DRIVER_LOST
    if simple_names & CONFLICT_CLASSES:
        return FailureKind.CONFLICT
    if any(marker in text for marker in TABLE_GONE_MARKERS):
        return FailureKind.TABLE_GONE
    if (
        any(name.startswith(METASTORE_CONNECTION_PACKAGES) for name in classes)
        or set(classes) & METASTORE_CONNECTION_CLASSES
        or any(marker in text for marker in METASTORE_CONNECTION_MARKERS)
    ):
        return FailureKind.CATALOG
    if any(name.startswith(STORAGE_PACKAGES) for name in classes):
        return FailureKind.STORAGE
    if set(classes) & METASTORE_CLASSES:
        return FailureKind.CATALOG
    if simple_names & UNFIT_CLASSES or any(marker in text for marker in UNFIT_MARKERS):
        return FailureKind.UNFIT
    if (
        simple_names & SPARK_CLUSTER_CLASSES
        or any(marker in text for marker in SPARK_CLUSTER_MARKERS)
        or _JOB_CANCELLED.search(text)
        or (SPARK_EXCEPTION in classes and _CANCELLED.search(text))
    ):
        return FailureKind.SPARK_CLUSTER
    return FailureKind.UNKNOWN


def failure_headline(text: str) -> str:
    """The Java exception (else the Python one) and the first line of its message, plus the root
    cause when it is another: what a log line or /health needs to say."""
    lines = _meaningful_lines(text)
    headlines = [(match.group(1), (match.group(2) or "").strip()) for line in lines if (match := _HEADLINE.match(line.strip()))]
    if not headlines:
        return lines[0] if lines else text
    # The first line is the Python exception; a Java one after it is what actually failed.
    outer = headlines[1] if len(headlines) > 1 else headlines[0]
    root = headlines[-1]
    said = ": ".join(part for part in outer if part)
    if root != outer:
        said += f" (caused by {': '.join(part for part in root if part)})"
    return said


def sink_error(identifier: str, error: BaseException) -> TransientSinkError | TerminalSinkError:
    """The sink's error for what a Spark or Delta call raised (see the module docstring)."""
    text = failure_text(error)
    kind, said = failure_kind(text), failure_headline(text)
    if kind is FailureKind.DRIVER_LOST:
        return SparkDriverLostError(f"{identifier}: the Spark driver is gone, this process cannot write any more: {said}")
    if kind is FailureKind.CONFLICT:
        return CommitConflictError(f"{identifier}: the commit kept conflicting with other commits: {said}")
    if kind is FailureKind.TABLE_GONE:
        return TransientSinkError(f"{identifier}: the table disappeared during the commit, the next attempt creates it again: {said}")
    if kind is FailureKind.CATALOG:
        return CatalogUnavailableError(f"{identifier}: the Hive metastore did not answer, nothing was committed: {said}")
    if kind is FailureKind.STORAGE:
        return StorageError(f"{identifier}: the object store refused or did not answer, nothing was committed: {said}")
    if kind is FailureKind.UNFIT:
        return TerminalSinkError(f"{identifier}: a value does not fit its column: {said}")
    if network_caused(error):
        return TransientSinkError(f"{identifier}: the network failed, the batch is retried: {said}")
    if kind is FailureKind.SPARK_CLUSTER:
        return TransientSinkError(f"{identifier}: the Spark cluster failed the job (not the data), the batch is retried: {said}")
    return UnexpectedSinkError(f"{identifier}: the batch cannot be written as it is, retrying cannot help: {said}")


def driver_alive(spark: SparkSession) -> bool:
    """Whether the session's driver can still run anything (its JVM answers, its context runs)."""
    try:
        # Python drops its handle on stop(); the JVM's context stops on its own when, say, the
        # standalone master gives the application up.
        context = spark.sparkContext._jsc  # noqa: SLF001 - no public liveness check in pyspark 3.5
        return context is not None and not spark._jsparkSession.sparkContext().isStopped()  # noqa: SLF001
    except Exception:  # noqa: BLE001 - any failure to ask means there is no one to ask
        return False


@contextmanager
def _failures_mapped(identifier: str, spark: SparkSession) -> Iterator[None]:
    try:
        yield
    except Exception as error:  # noqa: BLE001 - py4j and Spark raise many kinds; sink_error sorts them
        mapped = error if isinstance(error, (TransientSinkError, TerminalSinkError)) else sink_error(identifier, error)
        if not isinstance(mapped, SparkDriverLostError) and not driver_alive(spark):
            # A stopped session fails in Python first (no context to call) with nothing to recognise,
            # and a refusal then must not dead-letter records that were never really tried.
            said = failure_headline(failure_text(error))
            raise SparkDriverLostError(f"{identifier}: the Spark driver is gone, this process cannot write any more: {said}") from error
        if mapped is error:
            raise
        raise mapped from error


@contextmanager
def idempotent_commit(spark: SparkSession, app_id: str, version: int, user_metadata: str) -> Iterator[None]:
    """Session conf making the next Delta write idempotent and recording `user_metadata`, unset
    afterwards: left set, they would make the next write of any table in the session a duplicate."""
    settings = {TRANSACTION_APP_ID_CONF: app_id, TRANSACTION_VERSION_CONF: str(version), USER_METADATA_CONF: user_metadata}
    try:
        for key, value in settings.items():
            spark.conf.set(key, value)
        yield
    except BaseException:
        for key in settings:
            try:
                spark.conf.unset(key)
            except Exception:  # noqa: BLE001 - the failure that brought us here is the one to report
                pass
        raise
    for key in settings:
        spark.conf.unset(key)


@dataclass(frozen=True)
class LoadedTable:
    """What the writer knows of its table between batches."""

    delta: DeltaTable
    schema: StructType
    key_columns: tuple[str, ...]
    """The source primary key the MERGE is keyed by; () for a table without one (or not the sink's)."""
    key_recorded: bool
    """Whether the table has :data:`KEY_COLUMNS_PROPERTY`: without it, it was not created by the sink."""


@dataclass
class DeltaTableWriter:
    """Applies change-event batches to one Delta table (a :class:`pipelines.sinks.core.TableWriter`)."""

    spark: SparkSession
    identifier: str
    """`<database>.<table>`, e.g. `cdc_delta.pg_inventory_items`."""
    bucket: str
    """The warehouse bucket; tables live under `s3a://<bucket>/delta/`."""
    location_root: str | None = None
    """Folder of the database and its tables instead of `s3a://<bucket>/delta` (tests: a `file:` dir)."""
    conflict_retries: int = 3
    backoff_seconds: float = 0.5
    table: LoadedTable | None = field(default=None, repr=False)
    _database_ready: bool = field(default=False, repr=False)

    @property
    def database(self) -> str:
        return self.identifier.rsplit(".", 1)[0]

    @property
    def table_name(self) -> str:
        return self.identifier.rsplit(".", 1)[-1]

    @property
    def quoted_identifier(self) -> str:
        return f"{quoted(self.database)}.{quoted(self.table_name)}"

    @property
    def database_location(self) -> str:
        return self.location_root or f"s3a://{self.bucket}/{DELTA_PREFIX}"

    @property
    def table_location(self) -> str:
        if self.location_root is None:
            return delta_location(self.bucket, self.table_name)
        return f"{self.location_root.rstrip('/')}/{self.table_name}"

    def load(self) -> LoadedTable | None:
        """The table as it is now, or None if it does not exist."""
        with _failures_mapped(self.identifier, self.spark):
            return self._load()

    def _load(self) -> LoadedTable | None:
        self.table = None
        if not self.spark.catalog.tableExists(self.identifier):
            return None
        properties = {row["key"]: row["value"] for row in self.spark.sql(f"SHOW TBLPROPERTIES {self.quoted_identifier}").collect()}
        schema = self.spark.table(self.quoted_identifier).schema
        recorded = properties.get(KEY_COLUMNS_PROPERTY)
        key_columns = tuple(json.loads(recorded)) if recorded else ()
        self.table = LoadedTable(DeltaTable.forName(self.spark, self.quoted_identifier), schema, key_columns, key_recorded=recorded is not None)
        return self.table

    def committed_offsets(self) -> dict[str, int]:
        with _failures_mapped(self.identifier, self.spark):
            table = self._load()
            if table is None:
                return {}
            recent = commit_metadata(table.delta, HISTORY_LOOKBACK)
            found = recorded_offsets(recent)
            if found is None and len(recent) == HISTORY_LOOKBACK:
                found = recorded_offsets(commit_metadata(table.delta))
            return found or {}

    def _ensure_table(self, events: Sequence[ChangeEvent]) -> LoadedTable | None:
        """The table, created from the batch's first change that is not a truncate (a truncate's
        record has no key, so it cannot tell whether the source table has one); None when the batch
        only truncates a table that does not exist yet."""
        if self.table is not None:
            return self.table
        if not self._database_ready:
            self.spark.sql(f"CREATE DATABASE IF NOT EXISTS {quoted(self.database)} LOCATION '{self.database_location}'")
            self._database_ready = True
        if self._load() is None:
            first = next((event for event in events if event.op != "t"), None)
            if first is None:
                return None
            (
                DeltaTable.createIfNotExists(self.spark)
                .tableName(self.quoted_identifier)
                .addColumns(table_columns(first))
                .location(self.table_location)
                .property("delta.enableChangeDataFeed", "true")
                .property(KEY_COLUMNS_PROPERTY, json.dumps(list(first.key_columns)))
                .execute()
            )
            self._load()
        assert self.table is not None, f"{self.identifier} was just created"
        return self.table

    def _evolve(self, table: LoadedTable, events: Sequence[ChangeEvent]) -> LoadedTable:
        known = {column.name for column in table.schema.fields}
        added: dict[str, str] = {}
        for event in events:
            for column in event.row_schema.get("fields", []):
                if column["field"] not in known and column["field"] not in added:
                    added[column["field"]] = spark_type(column).simpleString()
        if not added:
            return table
        columns = ", ".join(f"{quoted(name)} {kind}" for name, kind in added.items())
        self.spark.sql(f"ALTER TABLE {self.quoted_identifier} ADD COLUMNS ({columns})")
        reloaded = self._load()
        assert reloaded is not None, f"{self.identifier} was just altered"
        return reloaded

    def _unfit_events(self, table: LoadedTable, events: Sequence[ChangeEvent]) -> dict[int, str]:
        """Events with a value their column cannot take -> why, by the check `createDataFrame` runs
        (after :func:`spark_value`), one event at a time so that only those are refused. A keyed
        table uses only an old row's key; a keyless one the whole old row."""
        keys = set(table.key_columns)
        checks = {
            column.name: (column.dataType, _make_type_verifier(column.dataType, nullable=column.name not in keys, name=column.name))
            for column in table.schema.fields
        }
        unfit: dict[int, str] = {}
        for index, event in enumerate(events):
            old = {name: value for name, value in (event.before or {}).items() if not keys or name in keys}
            for row in (event.after or {}, old):
                try:
                    for name, value in row.items():
                        if name in checks and value is not UNAVAILABLE:
                            kind, verify = checks[name]
                            verify(spark_value(value, kind))
                except (TypeError, ValueError, OverflowError) as error:
                    unfit[index] = f"{position(event)}: a value does not fit its column {name!r}: {error}"
                    break
        return unfit

    def _frame(self, fields: Sequence[StructField], rows: list[tuple[Any, ...]]) -> DataFrame:
        try:
            return self.spark.createDataFrame(rows, StructType(list(fields)), verifySchema=True)
        except (TypeError, ValueError, OverflowError) as unfit:
            raise TerminalSinkError(f"{self.identifier}: a value does not fit its column: {unfit}") from unfit

    def _source(self, table: LoadedTable, plan: BatchPlan) -> DataFrame:
        """The MERGE's source: one row per key the batch upserts or deletes, typed as the table;
        with unresolved rows, also which columns each keeps, from which key's current row, and
        which upsert of the plan it is."""
        columns, keys = table.schema.fields, table.key_columns
        key_types = [next(column.dataType for column in columns if column.name == name) for name in keys]
        # Delete rows carry only their key, so every other column of the source may be NULL.
        fields = [StructField(column.name, column.dataType, nullable=column.name not in keys) for column in columns]
        fields.append(StructField(OP_COLUMN, StringType(), nullable=False))
        if plan.unresolved:
            fields.append(StructField(KEEP_COLUMN, ArrayType(StringType(), containsNull=False), nullable=True))
            fields.extend(StructField(f"{_FROM_KEY_PREFIX}{index}", kind, nullable=True) for index, kind in enumerate(key_types))
            fields.append(StructField(_ROW_COLUMN, IntegerType(), nullable=True))

        def lookup(key: Key | None, kept: frozenset[str], row_number: int | None) -> list[Any]:
            if not plan.unresolved:
                return []
            source_key = key if key is not None else (None,) * len(keys)
            return [sorted(kept) or None, *(spark_value(value, kind) for value, kind in zip(source_key, key_types)), row_number]

        rows: list[tuple[Any, ...]] = []
        try:
            for row_number, (key, row) in enumerate(plan.upserts.items()):
                source_key, kept = plan.unresolved.get(key, (None, frozenset()))
                cells = [None if column.name in kept else spark_value(row.get(column.name), column.dataType) for column in columns]
                rows.append((*cells, UPSERT, *lookup(source_key, kept, row_number)))
            for key in plan.deletes:
                by_name = dict(zip(keys, key))
                cells = [spark_value(by_name.get(column.name), column.dataType) for column in columns]
                rows.append((*cells, DELETE, *lookup(None, frozenset(), None)))
        except (TypeError, ValueError, OverflowError) as unfit:
            raise TerminalSinkError(f"{self.identifier}: a value does not fit its column: {unfit}") from unfit
        return self._frame(fields, rows)

    def _keep_unavailable(self, table: LoadedTable, plan: BatchPlan, source: DataFrame, events: Sequence[ChangeEvent]) -> DataFrame:
        """`source` with the columns the source did not send taken from the table's current row,
        joined in Spark so the values never leave it (Python would read timestamps in local time).
        An upsert whose row the table does not hold refuses the event that wrote it last."""
        keys = table.key_columns
        kept_columns = sorted(set().union(*(columns for _, columns in plan.unresolved.values())))
        kept_alias = {name: f"{_KEPT_PREFIX}{index}" for index, name in enumerate(kept_columns)}
        current = self.spark.table(self.quoted_identifier).select(
            *(F.col(quoted(name)).alias(f"{_CURRENT_KEY_PREFIX}{index}") for index, name in enumerate(keys)),
            *(F.col(quoted(name)).alias(alias) for name, alias in kept_alias.items()),
        )
        matches = [F.col(f"{_FROM_KEY_PREFIX}{index}") == F.col(f"{_CURRENT_KEY_PREFIX}{index}") for index in range(len(keys))]
        joined = source.join(current, functools.reduce(operator.and_, matches), "left")
        missing = [
            row[_ROW_COLUMN]
            for row in joined.where(F.col(KEEP_COLUMN).isNotNull() & F.col(f"{_CURRENT_KEY_PREFIX}0").isNull()).select(_ROW_COLUMN).collect()
        ]
        if missing:
            upserted = list(plan.upserts)
            writers = _last_writers(events, keys)
            refused: dict[int, str] = {}
            for row_number in missing:
                key = upserted[row_number]
                # The event that wrote the row last is refused; an earlier one just as short of values is, on the next try.
                writer = writers[key]
                refused[writer] = (
                    f"{position(events[writer])}: the row {dict(zip(keys, key))} arrived without {sorted(plan.unresolved[key][1])} "
                    "(unchanged TOASTed values the source does not send) and the table has no row to keep them from"
                )
            _refuse(self.identifier, refused)

        def resolved(name: str) -> Column:
            if name not in kept_alias:
                return F.col(quoted(name))
            return F.when(F.array_contains(F.col(KEEP_COLUMN), name), F.col(kept_alias[name])).otherwise(F.col(quoted(name))).alias(name)

        return joined.select(*(resolved(column.name) for column in table.schema.fields), OP_COLUMN)

    def _keyed_merge(self, table: LoadedTable, source: DataFrame, truncate: bool) -> DeltaMergeBuilder:
        on = " AND ".join(f"target.{quoted(name)} = source.{quoted(name)}" for name in table.key_columns)
        assignments = {quoted(column.name): f"source.{quoted(column.name)}" for column in table.schema.fields}
        merge = (
            table.delta.alias("target")
            .merge(source.alias("source"), on)
            .whenMatchedDelete(condition=f"source.{OP_COLUMN} = '{DELETE}'")
            .whenMatchedUpdate(condition=f"source.{OP_COLUMN} = '{UPSERT}'", set=assignments)
            .whenNotMatchedInsert(condition=f"source.{OP_COLUMN} = '{UPSERT}'", values=assignments)
        )
        return merge.whenNotMatchedBySourceDelete() if truncate else merge

    def _removed_rows(self, table: LoadedTable, plan: KeylessPlan) -> DataFrame:
        """One row per distinct old row the batch removes (equal as Spark compares them, so a float
        or a decimal's scale that Python tells apart counts once): its columns as `_OLD_PREFIX<n>`,
        a group id, the removals it stands for and how many occurrences they take out."""
        columns = table.schema.fields
        fields = [StructField(f"{_OLD_PREFIX}{index}", column.dataType, nullable=True) for index, column in enumerate(columns)]
        fields += [StructField(_REMOVAL_COLUMN, IntegerType(), nullable=False), StructField(_WANTED_COLUMN, IntegerType(), nullable=False)]
        try:
            rows = [
                (*(spark_value(removal.row.get(column.name), column.dataType) for column in columns), number, len(removal.events))
                for number, removal in enumerate(plan.removals.values())
            ]
        except (TypeError, ValueError, OverflowError) as unfit:
            raise TerminalSinkError(f"{self.identifier}: a value does not fit its column: {unfit}") from unfit
        old = [f"{_OLD_PREFIX}{index}" for index in range(len(columns))]
        return (
            self._frame(fields, rows)
            .groupBy(*old)
            .agg(
                F.min(_REMOVAL_COLUMN).alias(_GROUP_COLUMN),
                F.collect_list(_REMOVAL_COLUMN).alias(_MEMBERS_COLUMN),
                F.sum(_WANTED_COLUMN).alias(_WANTED_COLUMN),
            )
        )

    def _keyless_merge(self, table: LoadedTable, plan: KeylessPlan, events: Sequence[ChangeEvent]) -> DeltaMergeBuilder:
        """The MERGE of a batch for a keyless table (see the module docstring). Refuses, with those
        the plan rejected (which it planned without), the events removing more occurrences of an
        old row than the table holds, the latest ones."""
        names = [column.name for column in table.schema.fields]
        old = [f"{_OLD_PREFIX}{index}" for index in range(len(names))]
        removals = list(plan.removals.values())
        parts: list[DataFrame] = []
        refused = dict(plan.rejected)
        if removals:
            groups = self._removed_rows(table, plan)
            current = self.spark.table(self.quoted_identifier)
            equal = current.join(F.broadcast(groups), null_safe_match([quoted(name) for name in names], old), "inner")
            present = F.broadcast(equal.groupBy(_GROUP_COLUMN).agg(F.count(F.lit(1)).alias(_PRESENT_COLUMN)))
            counted = (
                groups.join(present, _GROUP_COLUMN, "left")
                .select(_MEMBERS_COLUMN, F.coalesce(F.col(_PRESENT_COLUMN), F.lit(0)).alias(_PRESENT_COLUMN))
                .collect()
            )
            why = "the table was truncated before it" if plan.truncate else "none, or fewer than the batch removes"
            for group in counted:
                removing = sorted(index for member in group[_MEMBERS_COLUMN] for index in removals[member].events)
                held = 0 if plan.truncate else group[_PRESENT_COLUMN]
                for index in removing[held:]:
                    refused[index] = (
                        f"{position(events[index])}: no row of the table equals the old row of this {events[index].operation} ({why}); {NO_OLD_ROW_HINT}"
                    )
            parts.append(groups.select(*(F.col(column).alias(name) for column, name in zip(old, names)), F.lit(DELETE).alias(OP_COLUMN)))
            # Identical rows are interchangeable: which of them survive does not matter, how many does.
            occurrence = F.row_number().over(Window.partitionBy(_GROUP_COLUMN).orderBy(_GROUP_COLUMN))
            survivors = equal.withColumn(_OCCURRENCE_COLUMN, occurrence).where(F.col(_OCCURRENCE_COLUMN) > F.col(_WANTED_COLUMN))
            parts.append(survivors.select(*(F.col(quoted(name)) for name in names), F.lit(INSERT).alias(OP_COLUMN)))
        _refuse(self.identifier, refused)
        fields = [StructField(column.name, column.dataType, nullable=True) for column in table.schema.fields]
        try:
            appended = [(*(spark_value(row.get(column.name), column.dataType) for column in table.schema.fields), INSERT) for row in plan.appends]
        except (TypeError, ValueError, OverflowError) as unfit:
            raise TerminalSinkError(f"{self.identifier}: a value does not fit its column: {unfit}") from unfit
        parts.append(self._frame([*fields, StructField(OP_COLUMN, StringType(), nullable=False)], appended))
        source = functools.reduce(DataFrame.unionByName, parts)
        on = " AND ".join([*(f"target.{quoted(name)} <=> source.{quoted(name)}" for name in names), f"source.{OP_COLUMN} = '{DELETE}'"])
        assignments = {quoted(name): f"source.{quoted(name)}" for name in names}
        merge = (
            table.delta.alias("target")
            .merge(source.alias("source"), on)
            # Unconditional: a table row equal to two source rows Spark told apart is still deleted once.
            .whenMatchedDelete()
            .whenNotMatchedInsert(condition=f"source.{OP_COLUMN} = '{INSERT}'", values=assignments)
        )
        return merge.whenNotMatchedBySourceDelete() if plan.truncate else merge

    def _execute(self, build: Callable[[], DeltaMergeBuilder]) -> None:
        """Runs the MERGE `build` makes, built again after a commit conflict (against the table as it is then)."""
        for attempt in range(self.conflict_retries + 1):
            try:
                build().execute()
                return
            except Exception as error:  # noqa: BLE001 - only a commit conflict is retried; the rest is mapped above
                if attempt == self.conflict_retries or failure_kind(failure_text(error)) is not FailureKind.CONFLICT:
                    raise
                time.sleep(self.backoff_seconds * 2**attempt)

    def _version(self, table: LoadedTable) -> int:
        return int(table.delta.history(1).select("version").first()["version"])

    def apply(self, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> Commit:
        """Applies the batch in one commit recording `offsets`; nothing is committed if it fails."""
        if not events:
            return Commit(rows=0, version=None)
        try:
            with _failures_mapped(self.identifier, self.spark):
                return self._apply(events, offsets)
        except TransientSinkError:
            # The table may have been dropped or altered behind our back: the next attempt looks again.
            self.table = None
            self._database_ready = False
            raise

    def _apply(self, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> Commit:
        created = self._ensure_table(events)
        if created is None:
            return Commit(rows=0, version=None)  # only truncates, of a table not created yet: nothing to do
        table = self._evolve(created, events)
        if not table.key_recorded:
            raise TerminalSinkError(f"{self.identifier}: the table has no {KEY_COLUMNS_PROPERTY} property (not created by the sink) to MERGE by")
        try:
            if not table.key_columns:
                return self._apply_keyless(table, events, offsets)
            return self._apply_keyed(table, events, offsets)
        except RejectedEventsError:
            # A retry after a call that failed once Delta had committed: the table moved on, and
            # refusing what it already holds would dead-letter applied changes.
            if not self._holds(table, offsets):
                raise
            return Commit(rows=0, version=self._version(table))

    def _holds(self, table: LoadedTable, offsets: Mapping[str, int]) -> bool:
        """Whether the table's latest sink commit is at or past `offsets` on every partition."""
        recorded = recorded_offsets(commit_metadata(table.delta, HISTORY_LOOKBACK)) or {}
        return all(recorded.get(partition, -1) >= offset for partition, offset in offsets.items())

    def _apply_keyed(self, table: LoadedTable, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> Commit:
        plan = plan_batch(events, table.key_columns)
        _refuse(self.identifier, {**self._unfit_events(table, events), **plan.rejected})
        source = self._source(table, plan)
        if plan.unresolved:
            source = self._keep_unavailable(table, plan, source, events)
        with self._committing(offsets):
            self._execute(lambda: self._keyed_merge(table, source, plan.truncate))
        return Commit(rows=len(plan.upserts), version=self._version(table))

    def _apply_keyless(self, table: LoadedTable, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> Commit:
        plan = plan_keyless_batch(events)
        unfit = self._unfit_events(table, events)
        if unfit:
            # The plan holds these events; the rest is planned (and counted) again without them.
            _refuse(self.identifier, {**unfit, **plan.rejected})
        with self._committing(offsets):
            self._execute(lambda: self._keyless_merge(table, plan, events))
        return Commit(rows=len(plan.appends), version=self._version(table))

    def _committing(self, offsets: Mapping[str, int]) -> AbstractContextManager[None]:
        """The next write is this batch's idempotent commit recording `offsets`."""
        recorded = json.dumps(dict(offsets), sort_keys=True)
        return idempotent_commit(self.spark, transaction_app_id(self.identifier), transaction_version(offsets), recorded)


def _refuse(identifier: str, rejected: Mapping[int, str]) -> None:
    """Raises :class:`RejectedEventsError` for the events (position -> why) when there are any."""
    if rejected:
        raise RejectedEventsError(identifier, dict(sorted(rejected.items())))


def _last_writers(events: Sequence[ChangeEvent], key_columns: Sequence[str]) -> dict[Key, int]:
    """{key: position of the last event of the batch that wrote that key's row}."""
    writers: dict[Key, int] = {}
    for index, event in enumerate(events):
        if event.op != "d" and event.after is not None and all(column in event.after for column in key_columns):
            writers[tuple(event.after[column] for column in key_columns)] = index
    return writers
