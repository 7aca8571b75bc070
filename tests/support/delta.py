"""The stack's Delta Lake for tests: delta-rs reads of the tables (no JVM), a Spark session on the
stack's cluster, source tables the Delta sink replicates, and databases a test owns."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.rows
import pyarrow as pa
import pymysql
import pymysql.cursors
from confluent_kafka.admin import AdminClient
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from pyspark.sql import SparkSession

import stack_outputs as out
from pipelines.sinks.job import table_identifier
from pipelines.spark import DELTA_PREFIX, bucket_of
from testkit import delta as testkit_delta
from testkit.connectors import drop_captured_mysql_table, drop_captured_postgres_table
from testkit.kafka import ensure_topic
from testkit.names import unique_name
from tests.support.lake import Convergence, forget_topic, wait_for_parity, wait_for_table_sink, wait_until_caught_up
from tests.support.stack import StackOutputs

DELTA_SINK = "delta-sink"
SINK_START_SECONDS = 90.0
"""Discovery (5 s) plus, for the first table of a fresh driver, the executor's start."""


@dataclass(frozen=True)
class DeltaLake:
    """The Delta tables of the stack's warehouse, read with delta-rs."""

    database: str
    bucket: str
    storage_options: dict[str, str]

    @classmethod
    def of(cls, stack: StackOutputs) -> DeltaLake:
        stack.s3_client()  # checks the object store is healthy, naming the fix
        return cls(
            database=stack[out.DELTA_DATABASE],
            bucket=bucket_of(stack[out.WAREHOUSE]),
            storage_options=stack.object_store.delta_rs_storage_options(),
        )

    def uri(self, table: str, root: str = DELTA_PREFIX) -> str:
        return f"s3://{self.bucket}/{root}/{table}"

    def open(self, table: str, version: int | None = None, root: str = DELTA_PREFIX) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri(table, root), version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def rows(self, table: str, version: int | None = None, root: str = DELTA_PREFIX) -> list[dict[str, Any]]:
        """The table's rows (at `version`), [] while it does not exist."""
        opened = self.open(table, version, root)
        return [] if opened is None else opened.to_pyarrow_table().to_pylist()

    def version(self, table: str, root: str = DELTA_PREFIX) -> int | None:
        opened = self.open(table, root=root)
        return None if opened is None else opened.version()

    def changes(self, table: str, starting_version: int, ending_version: int | None = None, root: str = DELTA_PREFIX) -> list[dict[str, Any]]:
        """The Change Data Feed between versions (inclusive), in commit order."""
        opened = self.open(table, root=root)
        assert opened is not None, f"no Delta table at {self.uri(table, root)}"
        reader = opened.load_cdf(starting_version=starting_version, ending_version=ending_version)
        rows = pa.RecordBatchReader.from_stream(reader).read_all().to_pylist()
        return sorted(rows, key=lambda row: row["_commit_version"])

    def delete_files(self, s3: Any, root: str) -> None:
        """Every object under `<root>/` of the bucket (a table or a database folder)."""
        testkit_delta.delete_objects(s3, self.bucket, root)


@dataclass
class DeltaSourceTable:
    """A source table the Delta sink replicates, its topic and its Delta table."""

    name: str
    qualified: str
    topic: str
    identifier: str
    """`cdc_delta.<table>` in the metastore."""

    @property
    def table(self) -> str:
        """The Delta table's name (its folder under `delta/`)."""
        return self.identifier.split(".", 1)[1]


@contextmanager
def replicated_table(
    stack: StackOutputs,
    admin: AdminClient,
    spark: SparkSession,
    lake: DeltaLake,
    topic_prefix: str,
    create: Callable[[str], None],
    drop: Callable[[str], None],
    prefix: str = "delta",
    sinks: Sequence[str] = (DELTA_SINK,),
    forget_elsewhere: Callable[[str], None] = lambda _topic: None,
) -> Iterator[DeltaSourceTable]:
    """`inventory.<prefix>_<unique>` made by `create(qualified)`; the sinks replicate it until the
    test ends, then the source table, its topics, its Delta table and files are removed (and with
    `forget_elsewhere(topic)` what other sinks made of it)."""
    name = unique_name(prefix)
    topic = f"{topic_prefix}.inventory.{name}"
    table = DeltaSourceTable(name, f"inventory.{name}", topic, table_identifier(lake.database, topic))
    for sink in sinks:
        wait_until_caught_up(stack, sink)
    ensure_topic(admin, topic)
    create(table.qualified)
    try:
        for sink in sinks:
            wait_for_table_sink(stack, topic, SINK_START_SECONDS, sink)
        yield table
    finally:
        drop(table.qualified)
        forget_topic(stack, admin, topic, sinks=sinks)
        spark.sql(f"DROP TABLE IF EXISTS {table.identifier}")
        lake.delete_files(stack.s3_client(), f"{DELTA_PREFIX}/{table.table}")
        forget_elsewhere(topic)


def postgres_creator(pg: psycopg.Connection, columns_sql: str, connect_url: str, connector: str) -> tuple[Callable[[str], None], Callable[[str], None]]:
    def create(qualified: str) -> None:
        pg.execute(f"CREATE TABLE {qualified} ({columns_sql})")
        # Deletes carry the whole old row, as the parity and CDF checks compare it.
        pg.execute(f"ALTER TABLE {qualified} REPLICA IDENTITY FULL")

    return create, lambda qualified: drop_captured_postgres_table(pg, qualified, connect_url, connector)


def mysql_creator(mysql: pymysql.connections.Connection, columns_sql: str, connect_url: str, connector: str) -> tuple[Callable[[str], None], Callable[[str], None]]:
    def run(sql: str) -> None:
        with mysql.cursor() as cursor:
            cursor.execute(sql)

    return (
        lambda qualified: run(f"CREATE TABLE {qualified} ({columns_sql}) ENGINE=InnoDB"),
        lambda qualified: drop_captured_mysql_table(mysql, qualified, connect_url, connector),
    )


def owned_database(spark: SparkSession, lake: DeltaLake, s3: Any) -> AbstractContextManager[tuple[str, str]]:
    """(database, s3a location) of the caller's own in the stack's metastore; dropped with its files afterwards."""
    return testkit_delta.owned_database(spark, s3, lake.bucket)


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A row as both sides of a parity check can be compared: exact decimals as text, instants in UTC,
    JSON text as data, lists as tuples."""
    result: dict[str, Any] = {}
    for column, value in row.items():
        if isinstance(value, decimal.Decimal):
            value = format(value, "f")
        elif isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        elif isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        result[column] = value
    return result


def postgres_rows(pg: psycopg.Connection, qualified: str) -> Callable[[], list[dict[str, Any]]]:
    def read() -> list[dict[str, Any]]:
        with pg.cursor(row_factory=psycopg.rows.dict_row) as cursor:
            return list(cursor.execute(f"SELECT * FROM {qualified}"))

    return read


def mysql_rows(mysql: pymysql.connections.Connection, qualified: str) -> Callable[[], list[dict[str, Any]]]:
    def read() -> list[dict[str, Any]]:
        with mysql.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(f"SELECT * FROM {qualified}")
            return list(cursor.fetchall())

    return read


def wait_for_delta_parity(
    lake: DeltaLake,
    table: DeltaSourceTable,
    read_source: Callable[[], list[dict[str, Any]]],
    key_columns: Sequence[str] = ("id",),
    timeout: float = 180.0,
    normalize: Callable[[dict[str, Any]], dict[str, Any]] = comparable,
) -> Convergence:
    """Polls until the Delta table equals the source as multisets (a duplicated key is a difference)."""
    return wait_for_parity(
        read_source, lambda: lake.rows(table.table), key_columns, f"delta-sink: {table.identifier} vs {table.qualified}", timeout, normalize
    )


def change_feed(spark: SparkSession, identifier: str, starting_version: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
    """(commit version, change type, row) of the table's Change Data Feed through Spark, in commit order."""
    rows = spark.sql(f"SELECT * FROM table_changes('{identifier}', {starting_version})").collect()
    feed = []
    for row in rows:
        values = row.asDict()
        version, kind = values.pop("_commit_version"), values.pop("_change_type")
        values.pop("_commit_timestamp")
        feed.append((version, kind, values))
    return sorted(feed, key=lambda entry: (entry[0], entry[1], sorted(map(str, entry[2].values()))))
