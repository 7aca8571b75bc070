"""How the Delta sink types a table, converts values, keys its idempotent commits, reads its offsets
back and sorts Spark's failures (pure functions: no Spark JVM)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    TimestampNTZType,
    TimestampType,
)

from pipelines.sinks.delta.types import spark_type, spark_value, struct_type_from_event
from pipelines.sinks.delta.writer import (
    CommitConflictError,
    FailureKind,
    SparkDriverLostError,
    failure_headline,
    failure_kind,
    failure_text,
    recorded_offsets,
    sink_error,
    transaction_version,
)
from pipelines.sinks.errors import CatalogUnavailableError, StorageError, TerminalSinkError, TransientSinkError, UnexpectedSinkError
from testkit.iceberg import change

DECIMAL = "org.apache.kafka.connect.data.Decimal"


def column(kind: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"field": "c", "type": kind, **({"name": name} if name else {}), **extra}


def java_failure(trace: str) -> str:
    """A failure as :func:`failure_text` has it for an error raised through py4j."""
    return f"py4j.protocol.Py4JJavaError: An error occurred while calling o123.execute.\n: {trace}"


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (column("int8"), IntegerType()),
        (column("int16"), IntegerType()),
        (column("int32"), IntegerType()),
        (column("int64"), LongType()),
        (column("float32"), FloatType()),
        (column("float64"), DoubleType()),
        (column("float"), FloatType()),
        (column("double"), DoubleType()),
        (column("boolean"), BooleanType()),
        (column("string"), StringType()),
        (column("bytes"), BinaryType()),
        (column("int32", "io.debezium.time.Date"), DateType()),
        (column("int32", "org.apache.kafka.connect.data.Date"), DateType()),
        (column("int64", "io.debezium.time.Timestamp"), TimestampNTZType()),
        (column("int64", "io.debezium.time.MicroTimestamp"), TimestampNTZType()),
        (column("int64", "io.debezium.time.NanoTimestamp"), TimestampNTZType()),
        (column("int64", "org.apache.kafka.connect.data.Timestamp"), TimestampNTZType()),
        (column("string", "io.debezium.time.ZonedTimestamp"), TimestampType()),
        (column("int32", "io.debezium.time.Time"), StringType()),
        (column("int64", "io.debezium.time.MicroTime"), StringType()),
        (column("int64", "io.debezium.time.NanoTime"), StringType()),
        (column("string", "io.debezium.data.Uuid"), StringType()),
        (column("string", "io.debezium.data.Json"), StringType()),
        (column("struct", "io.debezium.data.VariableScaleDecimal"), StringType()),
    ],
)
def test_connect_types_map_to_the_spark_types_iceberg_has_for_them(schema: dict[str, Any], expected: object) -> None:
    assert spark_type(schema) == expected


def test_decimals_keep_precision_and_scale_and_default_to_38_digits() -> None:
    assert spark_type(column("bytes", DECIMAL, parameters={"scale": "2", "connect.decimal.precision": "12"})) == DecimalType(12, 2)
    assert spark_type(column("bytes", DECIMAL, parameters={"scale": "4"})) == DecimalType(38, 4)


def test_a_decimal_wider_than_38_digits_is_refused() -> None:
    with pytest.raises(TerminalSinkError, match=r"decimal\(40,2\) is wider than Spark's 38 digits"):
        spark_type(column("bytes", DECIMAL, parameters={"scale": "2", "connect.decimal.precision": "40"}))


def test_arrays_are_arrays_of_their_element_type() -> None:
    assert spark_type(column("array", items={"type": "int64", "optional": False})) == ArrayType(LongType(), containsNull=False)
    nested = column("array", items={"type": "array", "items": {"type": "string", "optional": True}, "optional": True})
    assert spark_type(nested) == ArrayType(ArrayType(StringType(), True), True)


def test_an_unmappable_column_type_is_a_terminal_error() -> None:
    with pytest.raises(TerminalSinkError, match="no Spark type for Connect type 'map'"):
        spark_type({"field": "tags", "type": "map"})


def test_the_table_columns_follow_the_event_with_only_the_key_not_null() -> None:
    schema = {
        "fields": [
            {"field": "region", "type": "string", "optional": False},
            {"field": "id", "type": "int32", "optional": False},
            {"field": "note", "type": "string", "optional": False},
            {"field": "seen", "type": "string", "name": "io.debezium.time.ZonedTimestamp", "optional": True},
        ]
    }
    struct = struct_type_from_event(change("c", after={}, row_schema=schema, key_columns=("id", "region")))
    assert struct.fields == [
        StructField("region", StringType(), nullable=False),
        StructField("id", IntegerType(), nullable=False),
        StructField("note", StringType(), nullable=True),
        StructField("seen", TimestampType(), nullable=True),
    ]


def test_a_source_table_without_a_primary_key_cannot_be_merged() -> None:
    with pytest.raises(TerminalSinkError, match="no primary key"):
        struct_type_from_event(change("c", after={"id": 1}, key_columns=()))


def test_times_of_day_are_iso_text() -> None:
    assert spark_value(dt.time(13, 14, 15, 160000), StringType()) == "13:14:15.160000"
    assert spark_value(dt.time(8, 0), StringType()) == "08:00:00"


def test_json_uuid_and_variable_scale_decimals_are_text() -> None:
    assert spark_value({"b": 1, "a": [True, None]}, StringType()) == '{"a": [true, null], "b": 1}'
    assert spark_value([1, 2], StringType()) == "[1, 2]"
    assert spark_value(7, StringType()) == "7"
    identifier = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert spark_value(identifier, StringType()) == "12345678-1234-5678-1234-567812345678"
    assert spark_value(decimal.Decimal("0E-10"), StringType()) == "0.0000000000"
    assert spark_value("plain", StringType()) == "plain"


def test_zoned_timestamps_are_instants_and_local_ones_stay_local() -> None:
    naive = dt.datetime(2024, 1, 2, 3, 4, 5)
    assert spark_value(naive, TimestampType()) == naive.replace(tzinfo=dt.timezone.utc)
    zoned = dt.datetime(2024, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert spark_value(zoned, TimestampType()) is zoned
    assert spark_value(naive, TimestampNTZType()) is naive
    assert spark_value(zoned, TimestampNTZType()) == naive


def test_decimals_are_kept_exactly_at_the_column_scale() -> None:
    assert spark_value(decimal.Decimal("1234.5"), DecimalType(12, 2)) == decimal.Decimal("1234.50")
    assert str(spark_value(decimal.Decimal("1234.5"), DecimalType(12, 2))) == "1234.50"
    assert spark_value(7, DecimalType(5, 0)) == decimal.Decimal(7)
    wide = decimal.Decimal("12345678901234567890123456789012345678")
    assert spark_value(wide, DecimalType(38, 0)) == wide


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (decimal.Decimal("12345678901.00"), DecimalType(12, 2)),
        (decimal.Decimal("1.005"), DecimalType(12, 2)),
        (decimal.Decimal("NaN"), DecimalType(12, 2)),
        (2**31, IntegerType()),
        (-(2**63) - 1, LongType()),
    ],
)
def test_a_value_that_does_not_fit_its_column_is_refused(value: Any, kind: object) -> None:
    with pytest.raises((ValueError, OverflowError)):
        spark_value(value, kind)


def test_arrays_convert_each_element() -> None:
    assert spark_value([dt.time(1, 2), None], ArrayType(StringType())) == ["01:02:00", None]
    assert spark_value(bytearray(b"\x00\x01"), BinaryType()) == b"\x00\x01"
    assert spark_value(None, DecimalType(5, 2)) is None


def test_the_transaction_version_grows_with_the_offsets() -> None:
    assert transaction_version({"t:0": 10}) == 10
    assert transaction_version({"t:0": 10, "t:1": 5}) == 15
    assert transaction_version({"t:0": 11, "t:1": 5}) > transaction_version({"t:0": 10, "t:1": 5})
    assert transaction_version({}) == 0


def test_committed_offsets_are_those_of_the_newest_sink_commit() -> None:
    history = [
        (0, None),
        (1, '{"t:0": 10}'),
        (3, None),
        (2, '{"t:0": 20, "t:1": 3}'),
        (4, "a note someone else left"),
    ]
    assert recorded_offsets(history) == {"t:0": 20, "t:1": 3}


def test_a_table_without_sink_commits_has_no_offsets() -> None:
    assert recorded_offsets([(0, None), (1, '["not", "offsets"]'), (2, '{"t:0": "x"}')]) is None
    assert recorded_offsets([]) is None


NOT_NULL = """org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 0.0 failed 1 times, most recent failure: Lost task 0.0 in stage 0.0 (TID 0) (localhost executor driver): org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows to s3a://warehouse/delta/items.
\tat org.apache.spark.sql.errors.QueryExecutionErrors$.taskFailedWhileWritingRowsError(QueryExecutionErrors.scala:774)
Caused by: org.apache.spark.sql.delta.schema.DeltaInvariantViolationException: [DELTA_NOT_NULL_CONSTRAINT_VIOLATED] NOT NULL constraint violated for column: id.
\tat org.apache.spark.sql.delta.schema.DeltaInvariantViolationException$.apply(InvariantViolationException.scala:58)
\t... 12 more"""
S3_REFUSED = """java.nio.file.AccessDeniedException: s3a://warehouse/delta/items/_delta_log/00000000000000000003.json: PUT 0-byte object on delta/items: com.amazonaws.services.s3.model.AmazonS3Exception: Access Denied
\tat org.apache.hadoop.fs.s3a.S3AUtils.translateException(S3AUtils.java:255)
Caused by: com.amazonaws.services.s3.model.AmazonS3Exception: Access Denied (Service: Amazon S3; Status Code: 403)"""
S3_DOWN = """org.apache.hadoop.fs.s3a.AWSClientIOException: getFileStatus on s3a://warehouse/delta/items/_delta_log: com.amazonaws.SdkClientException: Unable to execute HTTP request: Connect to 127.0.0.1:29000 failed: Connection refused
Caused by: com.amazonaws.SdkClientException: Unable to execute HTTP request: Connect to 127.0.0.1:29000 failed: Connection refused
Caused by: org.apache.http.conn.HttpHostConnectException: Connect to 127.0.0.1:29000 failed: Connection refused
Caused by: java.net.ConnectException: Connection refused"""
DERBY_DOWN = """org.apache.spark.sql.AnalysisException: org.apache.hadoop.hive.ql.metadata.HiveException: java.lang.RuntimeException: Unable to instantiate org.apache.hadoop.hive.ql.metadata.SessionHiveMetaStoreClient
Caused by: javax.jdo.JDOFatalDataStoreException: Unable to open a test connection to the given database. JDBC url = jdbc:derby://127.0.0.1:29527/metastore_db;create=true
Caused by: java.sql.SQLNonTransientConnectionException: java.net.ConnectException : Error connecting to server 127.0.0.1 on port 29527 with message Connection refused.
Caused by: org.apache.derby.client.am.DisconnectException: java.net.ConnectException : Error connecting to server 127.0.0.1 on port 29527 with message Connection refused.
Caused by: java.net.ConnectException: Connection refused"""
META_EXCEPTION = "org.apache.hadoop.hive.metastore.api.MetaException: Could not connect to meta store using any of the URIs provided."
CONFLICT = "io.delta.exceptions.ConcurrentAppendException: [DELTA_CONCURRENT_APPEND] ConcurrentAppendException: Files were added to the root of the table by a concurrent update. Please try the operation again."
OVERFLOW = "org.apache.spark.SparkArithmeticException: [CAST_OVERFLOW] The value 3000000000L of the type \"BIGINT\" cannot be cast to \"INT\" due to an overflow."
STOPPED = "java.lang.IllegalStateException: Cannot call methods on a stopped SparkContext.\nThis stopped SparkContext was created at:"
DROPPED = "org.apache.spark.sql.AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view `cdc_delta`.`items` cannot be found."
ODD = "java.lang.UnsupportedOperationException: something new\nwith a second line"
EXECUTOR_LOST = """org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 12.0 failed 4 times, most recent failure: Lost task 0.3 in stage 12.0 (TID 40) (127.0.0.1 executor 3): ExecutorLostFailure (executor 3 exited caused by one of the running tasks) Reason: Remote RPC client disassociated. Likely due to containers exceeding thresholds, or network issues. Check driver logs for WARN messages.
\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2898)"""
FETCH_FAILED = "org.apache.spark.SparkException: Job aborted due to stage failure: ResultStage 7 (execute at NativeMethodAccessorImpl.java:0) has failed the maximum allowable number of times: 4. Most recent failure reason: org.apache.spark.shuffle.FetchFailedException: Failed to connect to /127.0.0.1:40211"
NO_RESOURCES = "org.apache.spark.SparkException: Job aborted due to stage failure: Initial job has not accepted any resources; check your cluster UI to ensure that workers are registered and have sufficient resources"
JOB_CANCELLED = "org.apache.spark.SparkException: Job 42 cancelled part of cancelled job group cdcstack\n\tat org.apache.spark.scheduler.DAGScheduler.handleJobCancellation(DAGScheduler.scala:2730)"
STAGE_CANCELLED = "org.apache.spark.SparkException: Job aborted due to stage failure: Stage 3 cancelled"
TASK_BUG = """org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 2.0 failed 4 times, most recent failure: Lost task 0.3 in stage 2.0 (TID 9) (127.0.0.1 executor 0): java.lang.NullPointerException: Cannot invoke "Object.toString()" because "value" is null
\tat org.apache.spark.sql.catalyst.expressions.GeneratedClass.apply(Unknown Source)"""


@pytest.mark.parametrize(
    ("trace", "kind"),
    [
        (NOT_NULL, FailureKind.UNFIT),
        (OVERFLOW, FailureKind.UNFIT),
        (S3_REFUSED, FailureKind.STORAGE),
        (S3_DOWN, FailureKind.STORAGE),
        (DERBY_DOWN, FailureKind.CATALOG),
        (META_EXCEPTION, FailureKind.CATALOG),
        (CONFLICT, FailureKind.CONFLICT),
        (STOPPED, FailureKind.DRIVER_LOST),
        (DROPPED, FailureKind.TABLE_GONE),
        (ODD, FailureKind.UNKNOWN),
        (EXECUTOR_LOST, FailureKind.SPARK_CLUSTER),
        (FETCH_FAILED, FailureKind.SPARK_CLUSTER),
        (NO_RESOURCES, FailureKind.SPARK_CLUSTER),
        (JOB_CANCELLED, FailureKind.SPARK_CLUSTER),
        (STAGE_CANCELLED, FailureKind.SPARK_CLUSTER),
        (TASK_BUG, FailureKind.UNKNOWN),
    ],
)
def test_java_failures_are_sorted_by_their_exception_and_causes(trace: str, kind: FailureKind) -> None:
    assert failure_kind(java_failure(trace)) is kind


def test_a_gone_py4j_gateway_is_a_lost_driver() -> None:
    assert failure_kind("py4j.protocol.Py4JNetworkError: Answer from Java side is empty") is FailureKind.DRIVER_LOST
    assert failure_kind("py4j.protocol.Py4JError: An error occurred while calling o12.sql: SparkContext was shut down") is FailureKind.DRIVER_LOST


def test_class_names_in_stack_frames_do_not_count() -> None:
    trace = "java.lang.IllegalStateException: odd\n\tat java.io.FileInputStream.read(FileInputStream.java:1)\n\tat com.amazonaws.SdkClientException.x(A.java:1)"
    assert failure_kind(java_failure(trace)) is FailureKind.UNKNOWN


def test_the_headline_names_the_java_exception_and_its_root_cause() -> None:
    assert failure_headline(java_failure(S3_DOWN)) == (
        "org.apache.hadoop.fs.s3a.AWSClientIOException: getFileStatus on s3a://warehouse/delta/items/_delta_log: "
        "com.amazonaws.SdkClientException: Unable to execute HTTP request: Connect to 127.0.0.1:29000 failed: Connection refused "
        "(caused by java.net.ConnectException: Connection refused)"
    )
    assert failure_headline(java_failure(ODD)) == "java.lang.UnsupportedOperationException: something new"
    assert failure_headline("builtins.RuntimeError: boom") == "builtins.RuntimeError: boom"


class CapturedLike(Exception):
    """The shape of pyspark's CapturedException: a description and the Java stack trace as text."""

    def __init__(self, desc: str, stack_trace: str) -> None:
        super().__init__(desc)
        self.desc = desc
        self.stackTrace = stack_trace


def test_failure_text_includes_the_java_stack_trace_of_a_captured_exception() -> None:
    text = failure_text(CapturedLike("[CAST_OVERFLOW] too big", OVERFLOW))
    assert text.startswith(f"{__name__}.CapturedLike: [CAST_OVERFLOW] too big\n")
    assert OVERFLOW in text


class Py4JJavaErrorLike(Exception):
    """A py4j error whose str() needs the JVM, which is gone."""

    errmsg = "An error occurred while calling o7.execute"

    def __str__(self) -> str:
        raise ConnectionRefusedError(111, "Connection refused")


def test_failure_text_survives_a_jvm_that_cannot_be_asked() -> None:
    assert failure_text(Py4JJavaErrorLike()).endswith(": An error occurred while calling o7.execute")


@pytest.mark.parametrize(
    ("trace", "error_class", "says"),
    [
        (S3_DOWN, StorageError, "the object store refused or did not answer, nothing was committed"),
        (DERBY_DOWN, CatalogUnavailableError, "the Hive metastore did not answer"),
        (CONFLICT, CommitConflictError, "kept conflicting"),
        (STOPPED, SparkDriverLostError, "the Spark driver is gone"),
        (NOT_NULL, TerminalSinkError, "does not fit its column"),
        (DROPPED, TransientSinkError, "the table disappeared"),
        (ODD, UnexpectedSinkError, "retrying cannot help: java.lang.UnsupportedOperationException: something new"),
        (EXECUTOR_LOST, TransientSinkError, "the Spark cluster failed the job (not the data), the batch is retried: org.apache.spark.SparkException"),
        (JOB_CANCELLED, TransientSinkError, "the Spark cluster failed the job"),
    ],
)
def test_sink_errors_name_the_table_and_what_failed(trace: str, error_class: type[Exception], says: str) -> None:
    error = sink_error("cdc_delta.items", CapturedLike(trace.splitlines()[0], trace))
    assert type(error) is error_class
    assert str(error).startswith("cdc_delta.items: ") and says in str(error)


def test_the_environment_is_transient_and_the_data_terminal() -> None:
    transient = [S3_DOWN, S3_REFUSED, DERBY_DOWN, META_EXCEPTION, CONFLICT, STOPPED, DROPPED, EXECUTOR_LOST, FETCH_FAILED, NO_RESOURCES, JOB_CANCELLED]
    assert all(isinstance(sink_error("t", CapturedLike("x", trace)), TransientSinkError) for trace in transient)
    assert all(isinstance(sink_error("t", CapturedLike("x", trace)), TerminalSinkError) for trace in [OVERFLOW, NOT_NULL, ODD, TASK_BUG])


@pytest.mark.parametrize(
    "error",
    [KeyError("qty"), TypeError("unhashable type: 'list'"), ValueError("too many values to unpack")],
    ids=["KeyError", "TypeError", "ValueError"],
)
def test_a_python_error_inside_the_writer_is_the_events_and_terminal(error: Exception) -> None:
    mapped = sink_error("cdc_delta.items", error)
    assert type(mapped) is UnexpectedSinkError
    assert f"builtins.{type(error).__name__}" in str(mapped) and str(mapped).startswith("cdc_delta.items: ")


def test_a_python_network_error_is_transient_wherever_it_is_in_the_chain() -> None:
    reset = sink_error("t", ConnectionResetError(104, "Connection reset by peer"))
    assert type(reset) is TransientSinkError and "the network failed" in str(reset)
    assert type(sink_error("t", OSError(32, "Broken pipe"))) is TransientSinkError
    try:
        try:
            raise TimeoutError("timed out")
        except TimeoutError as timeout:
            raise RuntimeError("the py4j call failed") from timeout
    except RuntimeError as chained:
        assert type(sink_error("t", chained)) is TransientSinkError
